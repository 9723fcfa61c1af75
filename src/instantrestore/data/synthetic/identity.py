"""What a synthetic person is: the ``Identity`` parameter set, its dark marks, and the world
styles that decide how those marks look. Pure data: the random draws that fill it are in
``sampling``, the pictures in ``render``."""
from __future__ import annotations

from dataclasses import dataclass

MAX_MARKS = 7
MIN_MARKS = 3


@dataclass(frozen=True)
class WorldStyle:
    """How a world draws its people's marks. Radii are pixels at 128 px; a mark's colour is the
    skin's times a darkness drawn from ``mark_darkness``; centres lie ``mark_spacing`` apart
    (canonical units) at least."""

    name: str
    mark_radius: tuple[float, float]
    mark_darkness: tuple[float, float]
    mark_count: tuple[int, int]
    mark_spacing: float


WORLD_STYLES: dict[str, WorldStyle] = {
    "classic": WorldStyle("classic", mark_radius=(0.6, 1.5), mark_darkness=(0.3, 0.5), mark_count=(3, 7),
                          mark_spacing=0.035),
    # Marks a latent cell can hold (the tiny VAE has 4 px cells) and sr8 (8 px) still erases.
    "detail": WorldStyle("detail", mark_radius=(3.0, 4.0), mark_darkness=(0.12, 0.25), mark_count=(3, 6),
                         mark_spacing=0.075),
}


def get_world_style(style: str | WorldStyle) -> WorldStyle:
    """A world style by name (or as given); ValueError naming the choices otherwise."""
    if isinstance(style, WorldStyle):
        return style
    if style not in WORLD_STYLES:
        raise ValueError(f"unknown world style {style!r}; choose one of {', '.join(WORLD_STYLES)}")
    return WORLD_STYLES[style]


@dataclass(frozen=True)
class Mark:
    """A mole/freckle: centre (x, y) in the canonical face frame, radius in the same units
    (radius * 128 = pixels at 128 px), RGB colour."""

    x: float
    y: float
    radius: float
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Identity:
    """Every parameter of one synthetic person. Lengths are in canonical units (image side = 1)."""

    seed: int
    index: int
    skin_color: tuple[int, int, int]
    face_width: float        # half width at eye level
    face_height: float       # eye level to chin
    forehead_height: float   # eye level to top of the skull
    jaw_taper: float         # 0 = wide jaw, 0.4 = narrow chin
    jaw_power: float         # superellipse exponent: 2 = round, 3+ = square
    hair_color: tuple[int, int, int]
    bald: bool
    hair_volume: float       # how far the hair stands off the skull
    hair_length: float       # below eye level where side hair ends (<0: short)
    hairline: float          # fringe depth below the skull top
    hairline_flat: float     # exponent of the hairline curve (high = straight fringe)
    parting: float           # parting position, -1..1 of the face width
    eye_y: float
    eye_spacing: float       # distance between the eye centres
    eye_width: float
    eye_height: float
    eye_tilt: float
    iris_ratio: float        # iris diameter / eye height (the lids clip the rest)
    iris_colors: tuple[tuple[int, int, int], tuple[int, int, int]]  # eye of landmarks 36-41, then 42-47
    brow_color: tuple[int, int, int]
    brow_height: float
    brow_thickness: float
    brow_arch: float
    brow_length: float
    brow_slant: float
    nose_length: float
    nose_width: float
    mouth_offset: float      # eye level to mouth centre
    mouth_width: float
    upper_lip: float
    lower_lip: float
    lip_color: tuple[int, int, int]
    glasses_prob: float      # chance that a given photo shows glasses
    glasses_color: tuple[int, int, int]
    glasses_round: bool
    glasses_radius: float
    marks: tuple[Mark, ...]
    style: str = "classic"

