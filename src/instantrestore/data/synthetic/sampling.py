"""Every random draw of the synthetic world: a person's parameters from ``(seed, identity)``, a
photo's pose, light, expression and background from ``(seed, identity, photo)``, and a photo's
small re-render jitter.

The order and number of draws *is* the world: reordering, adding or removing one changes every
person (or photo) drawn after it, so new parameters go last. Each stream is seeded with its own
tag, so the three never overlap.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import face_outline
from .identity import Identity, Mark, WorldStyle, get_world_style

_TAG_IDENTITY, _TAG_IMAGE, _TAG_JITTER = 0x1D, 0x1A, 0x17  # keep identity, photo and jitter streams disjoint

IRIS_PALETTE = {  # RGB
    "brown": (105, 62, 30), "dark_brown": (70, 40, 22), "blue": (60, 115, 200), "light_blue": (120, 175, 225),
    "green": (60, 140, 70), "hazel": (150, 115, 45), "grey": (125, 140, 155), "amber": (200, 135, 35),
}
SKIN_TONES = [(246, 214, 190), (234, 192, 160), (222, 172, 135), (198, 145, 105), (160, 110, 75),
              (120, 80, 55), (95, 62, 42)]
HAIR_COLORS = [(25, 20, 18), (60, 40, 28), (100, 68, 40), (170, 130, 80), (215, 185, 120),
               (150, 60, 30), (160, 160, 160), (225, 225, 220)]


def _rgb(rng: np.random.Generator, base, jitter: float) -> tuple[int, int, int]:
    # mostly brightness jitter: independent per-channel jitter would tint grey hair green
    shift = rng.normal(0, jitter) + rng.normal(0, jitter * 0.3, size=3)
    return tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(base, shift))


def sample_identity(seed: int, identity: int, style: str | WorldStyle = "classic") -> Identity:
    """Identity ``identity`` of world ``seed``; the same arguments always give the same person.
    ``style``: how the marks are drawn (:data:`WORLD_STYLES`); everything else is the same person."""
    style = get_world_style(style)
    rng = np.random.default_rng([_TAG_IDENTITY, int(seed), int(identity)])
    u = rng.uniform
    skin = _rgb(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 6)
    iris_names = list(IRIS_PALETTE)
    first = iris_names[rng.integers(len(iris_names))]
    second = first if rng.random() > 0.15 else iris_names[rng.integers(len(iris_names))]
    hair = _rgb(rng, HAIR_COLORS[rng.integers(len(HAIR_COLORS))], 8)
    has_glasses = rng.random() < 0.4
    params = dict(
        seed=int(seed), index=int(identity), skin_color=skin,
        face_width=u(0.25, 0.31), face_height=u(0.29, 0.35), forehead_height=u(0.25, 0.30),
        jaw_taper=u(0.0, 0.35), jaw_power=u(2.0, 3.4),
        hair_color=hair, bald=bool(rng.random() < 0.06), hair_volume=u(0.01, 0.07),
        hair_length=u(-0.06, 0.40), hairline=u(0.07, 0.16), hairline_flat=u(2.0, 7.0), parting=u(-0.6, 0.6),
        eye_y=u(0.43, 0.47), eye_spacing=u(0.19, 0.24), eye_width=u(0.075, 0.095), eye_height=u(0.036, 0.046),
        eye_tilt=u(-0.12, 0.22), iris_ratio=u(0.85, 1.0),
        iris_colors=(_rgb(rng, IRIS_PALETTE[first], 8), _rgb(rng, IRIS_PALETTE[second], 8)),
        brow_color=tuple(int(c * 0.8) for c in hair) if rng.random() < 0.8 else _rgb(rng, (60, 45, 35), 10),
        brow_height=u(0.045, 0.065), brow_thickness=u(0.008, 0.02), brow_arch=u(0.0, 0.02),
        brow_length=u(0.08, 0.11), brow_slant=u(-0.012, 0.012),
        nose_length=u(0.12, 0.16), nose_width=u(0.05, 0.075),
        mouth_offset=u(0.20, 0.235), mouth_width=u(0.10, 0.14), upper_lip=u(0.008, 0.015),
        lower_lip=u(0.011, 0.02), lip_color=_rgb(rng, (skin[0] * 0.85, skin[1] * 0.55, skin[2] * 0.55), 10),
        glasses_prob=float(u(0.3, 0.7)) if has_glasses else 0.0,
        glasses_color=_rgb(rng, [(20, 20, 20), (110, 70, 30), (160, 160, 170), (120, 20, 30)][rng.integers(4)], 6),
        glasses_round=bool(rng.random() < 0.5), glasses_radius=u(0.052, 0.064),
    )
    params["marks"] = _sample_marks(rng, params, style)
    params["style"] = style.name
    return Identity(**{k: (float(v) if isinstance(v, np.floating) else v) for k, v in params.items()})


def _sample_marks(rng: np.random.Generator, p: dict, style: WorldStyle) -> tuple[Mark, ...]:
    """Rejection-sample marks on the cheeks, jaw and chin, clear of glasses, nose and mouth."""
    count = int(rng.integers(style.mark_count[0], style.mark_count[1] + 1))
    outline = face_outline(p["face_width"], p["face_height"], p["forehead_height"], p["jaw_taper"],
                           p["jaw_power"], p["eye_y"])
    cx, ye = 0.5, p["eye_y"]
    tip = ye + p["nose_length"]
    my, mw = ye + p["mouth_offset"], p["mouth_width"]
    marks: list[Mark] = []
    for _ in range(2000):
        if len(marks) == count:
            break
        x, y = rng.uniform(cx - p["face_width"], cx + p["face_width"]), rng.uniform(ye + 0.09, ye + p["face_height"])
        if _inside_margin(outline, x, y) < 0.03:
            continue
        if abs(x - cx) < p["nose_width"] / 2 + 0.02 and y < tip + 0.035:
            continue
        if ((x - cx) / (mw / 2 + 0.025)) ** 2 + ((y - my) / 0.055) ** 2 < 1:
            continue
        if any((x - m.x) ** 2 + (y - m.y) ** 2 < style.mark_spacing ** 2 for m in marks):
            continue
        darkness = rng.uniform(*style.mark_darkness)
        color = tuple(int(c * darkness) for c in p["skin_color"])
        marks.append(Mark(float(x), float(y), float(rng.uniform(*style.mark_radius) / 128), color))
    return tuple(marks)


def _inside_margin(outline: np.ndarray, x: float, y: float) -> float:
    """Signed distance from (x, y) to the polygon edge, positive inside."""
    return cv2.pointPolygonTest(outline.astype(np.float32).reshape(-1, 1, 2), (float(x), float(y)), True)


def photo_params(ident: Identity, image_index: int) -> dict:
    """Photo ``image_index`` of ``ident``: pose (angle, scale, shift), expression (smile, open,
    openness, gaze), glasses, background, lighting, colour cast and clothes."""
    rng = np.random.default_rng([_TAG_IMAGE, ident.seed, ident.index, int(image_index)])
    u = rng.uniform
    return dict(
        angle=math.radians(u(-8, 8)), scale=u(0.93, 1.07), shift=u(-0.03, 0.03, size=2),
        smile=u(-0.2, 1.0), open=float(u(0.2, 1.0)) if rng.random() < 0.3 else 0.0, openness=u(0.85, 1.1),
        gaze=u(-1, 1, size=2), glasses=bool(rng.random() < ident.glasses_prob),
        bg=(rng.uniform(40, 230, size=3), rng.uniform(40, 230, size=3)), bg_grid=int(rng.integers(3, 7)),
        bg_rng=int(rng.integers(2**62)), stripes=(rng.random() < 0.3, u(6, 20), u(0, math.pi), u(0.05, 0.15)),
        light_dir=u(0, 2 * math.pi), light=u(0.0, 0.15), cast=u(0.93, 1.07, size=3), gain=u(0.92, 1.08),
        clothes=rng.uniform(20, 235, size=3),
    )


def jittered_photo_params(ident: Identity, image_index: int, jitter: int) -> dict:
    """Photo ``image_index``'s parameters nudged by draw ``jitter``: about 1.5 degrees, 1.5 % scale,
    1 % shift, a little light and colour; the same expression, glasses and background."""
    ph = dict(photo_params(ident, image_index))
    rng = np.random.default_rng([_TAG_JITTER, ident.seed, ident.index, int(image_index), int(jitter)])
    n = rng.normal
    ph.update(angle=ph["angle"] + math.radians(n(0, 1.5)), scale=ph["scale"] * (1 + n(0, 0.015)),
              shift=ph["shift"] + n(0, 0.01, size=2), gaze=np.clip(ph["gaze"] + n(0, 0.15, size=2), -1, 1),
              light=float(np.clip(ph["light"] + n(0, 0.02), 0, 0.2)), cast=ph["cast"] * (1 + n(0, 0.01, size=3)),
              gain=ph["gain"] * (1 + n(0, 0.02)))
    return ph
