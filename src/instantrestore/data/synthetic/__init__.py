"""Procedural synthetic identities: a face dataset stand-in that renders on a CPU (NumPy/OpenCV).

An ``Identity`` is a frozen parameter set drawn from ``(seed, identity)``: face shape, skin,
hair, eyes (one iris colour per eye, heterochromia possible), brows, nose, mouth, optional
glasses and a constellation of 1-3 px (at 128 px) dark marks. ``render(identity, j, size)``
draws photo ``j`` of that person with per-photo pose, lighting, colour cast, expression,
background and glasses, and returns exact landmarks: the 68-point iBUG layout, then the marks.

Coordinates: the *canonical face frame* is the identity's neutral face in units of the image
side (face centred near (0.5, 0.5)); a per-photo similarity maps it to pixels, with pixel
centres at integer coordinates (x = u * size - 0.5), so the same photo at 128/256/512 px is the
same picture and landmarks scale with the size. Strong degradation (``sr8``) erases the marks and
blurs the irises into the sclera: those details are recoverable only from references.

World styles (:data:`WORLD_STYLES`) change what a person's marks look like: ``classic`` (the
default, 1-3 px marks: below one 4 px latent cell of the tiny VAE, so no latent can hold them)
and ``detail`` (6-8 px dark marks, 1.5-2 latent cells: a VAE keeps them, ``sr8`` still erases
them), a recipe option for the tiny world only (docs/data.md). ``render(..., jitter=k)``
re-renders a photo with a small pose/light change: the "oracle" reference of a curriculum.

Modules: ``identity`` (what a person is: ``Identity``, ``Mark``, world styles), ``sampling``
(every random draw: people, photos, jitter), ``geometry`` (canonical outline, features and
landmarks, canonical -> pixel map), ``render`` (drawing a photo), ``raster`` (anti-aliased
primitives).
"""
from .geometry import NUM_IBUG, canonical_landmarks
from .identity import MAX_MARKS, MIN_MARKS, WORLD_STYLES, Identity, Mark, WorldStyle, get_world_style
from .render import SyntheticImage, render
from .sampling import HAIR_COLORS, IRIS_PALETTE, SKIN_TONES, sample_identity

__all__ = [
    "HAIR_COLORS", "IRIS_PALETTE", "MAX_MARKS", "MIN_MARKS", "NUM_IBUG", "SKIN_TONES", "WORLD_STYLES", "Identity",
    "Mark", "SyntheticImage", "WorldStyle", "canonical_landmarks", "get_world_style", "render", "sample_identity",
]
