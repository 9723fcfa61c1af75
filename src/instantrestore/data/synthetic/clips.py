"""Short synthetic clips: one person moving over N frames, each frame with its exact ground truth.

``render_clip(identity, frames, size)`` starts from the person's photo 0 (``photo_params``) and moves
them smoothly: a translation (a drift and a sway), an in-plane rotation, a scale change (walking
closer) and an expression change (smile, mouth opening, gaze), while the background, light, clothes
and glasses stay those of the shot. ``degrade_clip`` degrades every frame independently (a fresh
draw of the preset per frame: new noise, new blur and JPEG draws), as a camera's frames are.
The motion is drawn from ``(seed, identity, clip)``: the same numbers give the same clip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .identity import Identity
from .render import SyntheticImage, render_params
from .sampling import photo_params

_TAG_CLIP = 0xC11B
_TAG_CLIP_DEGRADE = 0xC11D


@dataclass(frozen=True)
class ClipMotion:
    """The clip's motion amplitudes, drawn per clip: ``drift`` (x, y, image sides over the clip),
    ``sway`` (image sides), ``turn`` (radians), ``zoom`` (relative scale change), ``smile`` and
    ``open`` (expression change), ``cycles`` (sway/turn oscillations over the clip)."""

    drift: tuple[float, float]
    sway: float
    turn: float
    zoom: float
    smile: float
    open: float
    cycles: float


def sample_motion(seed: int, identity: int, clip: int = 0) -> ClipMotion:
    """A moderate head motion: a few percent of the image and degrees over the clip."""
    rng = np.random.default_rng([_TAG_CLIP, int(seed), int(identity), int(clip)])
    u = rng.uniform
    return ClipMotion(drift=(float(u(-0.06, 0.06)), float(u(-0.03, 0.03))), sway=float(u(0.01, 0.025)),
                      turn=math.radians(float(u(3, 7))), zoom=float(u(-0.08, 0.08)), smile=float(u(-0.6, 0.6)),
                      open=float(u(0.0, 0.6)), cycles=float(u(0.7, 1.5)))


def clip_params(identity: Identity, frames: int, motion: ClipMotion) -> list[dict]:
    """Per-frame photo parameters: photo 0's, moved by ``motion`` at t = i / (frames - 1)."""
    base = photo_params(identity, 0)
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        wave = math.sin(2 * math.pi * motion.cycles * t)
        ph = dict(base)
        ph.update(shift=base["shift"] + np.array([motion.drift[0] * (t - 0.5) + motion.sway * wave,
                                                  motion.drift[1] * (t - 0.5)]),
                  angle=base["angle"] + motion.turn * wave, scale=base["scale"] * (1 + motion.zoom * t),
                  smile=float(np.clip(base["smile"] + motion.smile * t, -0.2, 1.0)),
                  open=float(motion.open * max(0.0, math.sin(math.pi * t))),
                  gaze=np.clip(base["gaze"] + 0.3 * np.array([wave, 0.0]), -1, 1))
        out.append(ph)
    return out


def render_clip(identity: Identity, frames: int = 16, size: int = 128, seed: int = 0, clip: int = 0
                ) -> list[SyntheticImage]:
    """The clean frames (with landmarks) of clip ``clip`` of ``identity``; motion drawn from (seed, identity, clip)."""
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    motion = sample_motion(seed, identity.index, clip)
    return [render_params(identity, ph, size) for ph in clip_params(identity, frames, motion)]


def degrade_clip(images: list[np.ndarray], preset: str = "sr8", seed: int = 0, fixed: bool = False) -> list[np.ndarray]:
    """Each frame degraded with its own draw of ``preset`` (``data.degradations.random_degrade``), or with
    ``fixed`` frame 0's draw for every frame (the same noise, blur and JPEG: a diagnostic)."""
    from ..degradations import random_degrade

    return [random_degrade(image, preset, np.random.default_rng([_TAG_CLIP_DEGRADE, int(seed), 0 if fixed else i]))
            for i, image in enumerate(images)]
