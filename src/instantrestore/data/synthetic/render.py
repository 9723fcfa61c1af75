"""Drawing a synthetic photo: ``render(identity, j, size)`` paints photo ``j`` of a person from its
canonical geometry and its photo parameters and returns the image with exact landmarks."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import raster as R
from .geometry import (NUM_IBUG, canonical_landmarks, eye_curves, face_outline, hair_polygons, mouth_curves,
                       pixel_matrix)
from .identity import Identity
from .sampling import jittered_photo_params, photo_params


@dataclass(frozen=True)
class SyntheticImage:
    """One rendered photo.

    image: uint8 (size, size, 3) RGB. landmarks: float32 [68 + M, 2] pixel (x, y), iBUG-68 then
    the M marks in ``Identity.marks`` order. mark_slice: rows of the marks. eye_centers: float32
    [2, 2] iris centres (eye of landmarks 36-41 first); iris_radius: pixels; matrix: float32 [2, 3]
    canonical frame -> pixels; glasses: whether glasses are drawn.
    """

    image: np.ndarray
    landmarks: np.ndarray
    mark_slice: slice
    eye_centers: np.ndarray
    iris_radius: float
    matrix: np.ndarray
    glasses: bool


def render(identity: Identity, image_index: int, size: int = 128, jitter: int | None = None) -> SyntheticImage:
    """Draw photo ``image_index`` of ``identity`` at ``size`` x ``size`` px (see the package docs).
    ``jitter``: re-render that photo with small pose/light changes drawn from this number (the
    same number always gives the same picture); None = the photo itself."""
    ph = photo_params(identity, image_index) if jitter is None else jittered_photo_params(identity, image_index, jitter)
    return render_params(identity, ph, size)


def render_params(identity: Identity, ph: dict, size: int = 128) -> SyntheticImage:
    """Draw ``identity`` with explicit photo parameters ``ph`` (the dict ``sampling.photo_params``
    returns: pose, expression, light, background...), e.g. one frame of a clip (``clips``)."""
    ident = identity
    m = pixel_matrix(ph, size)
    px = lambda pts: np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]  # noqa: E731
    unit = size * ph["scale"]  # pixels per canonical unit
    img = _background(ph, size)
    skin = np.array(ident.skin_color, np.float64)
    lm = canonical_landmarks(ident, ph["smile"], ph["open"], ph["openness"])

    # body and hair behind the head
    R.fill_poly(img, px(_ellipse(0.5, 1.18, 0.42, 0.26)), ph["clothes"])
    neck_w = ident.face_width * 0.5
    R.fill_poly(img, px([[0.5 - neck_w, ident.eye_y + 0.15], [0.5 + neck_w, ident.eye_y + 0.15],
                         [0.5 + neck_w * 1.1, 1.0], [0.5 - neck_w * 1.1, 1.0]]), skin * 0.82)
    back, fringe = hair_polygons(ident)
    if not ident.bald:
        R.fill_poly(img, px(back), ident.hair_color)
    if ident.bald or ident.hair_length < 0.06:
        for side in (-1, 1):
            R.fill_poly(img, px(_ellipse(0.5 + side * ident.face_width * 0.97, ident.eye_y + 0.04, 0.024, 0.045)), skin * 0.92)

    # face, hair fringe, brows
    R.fill_poly(img, px(face_outline(ident.face_width, ident.face_height, ident.forehead_height,
                                     ident.jaw_taper, ident.jaw_power, ident.eye_y)), skin)
    if not ident.bald:
        R.fill_poly(img, px(fringe), ident.hair_color)
    for brow in (lm[17:22], lm[22:27][::-1]):
        _draw_brow(img, px(brow), ident.brow_thickness * unit, ident.brow_color)

    # eyes: sclera, iris clipped to the opening, pupil, catch-light, upper lid
    eye_centers = []
    iris_r = ident.iris_ratio * ident.eye_height / 2 * unit
    for k, side in enumerate((-1, 1)):
        up, lo = eye_curves(ident, ph["openness"], side)
        opening = px(np.concatenate([up, lo[::-1][1:-1]]))
        R.fill_poly(img, opening, (240, 238, 232))
        centre = np.array([0.5 + side * ident.eye_spacing / 2 + ph["gaze"][0] * ident.eye_width * 0.12,
                           ident.eye_y + ph["gaze"][1] * ident.eye_height * 0.08])
        c = px(centre[None])[0]
        eye_centers.append(c)
        R.soft_disk(img, c, iris_r, ident.iris_colors[k], mask_poly=opening, edge_dark=0.3)
        R.soft_disk(img, c, iris_r * 0.38, (18, 14, 14), mask_poly=opening)
        R.soft_disk(img, c + (-0.22 * iris_r, -0.22 * iris_r), iris_r * 0.14, (250, 250, 250), mask_poly=opening)
        R.polyline(img, px(up), skin * 0.35, 0.006 * unit)

    # nose and mouth
    R.polyline(img, px(lm[[27, 28, 29, 31]] + [ident.nose_width * 0.12, 0]), skin * 0.88, 0.004 * unit)
    R.polyline(img, px(lm[31:36]), skin * 0.78, 0.004 * unit)
    for j in (32, 34):
        R.soft_disk(img, px(lm[j][None])[0], 0.0045 * unit, skin * 0.5)
    ou, iu, il, ol = mouth_curves(ident, ph["smile"], ph["open"])
    lip = np.array(ident.lip_color, np.float64)
    R.fill_poly(img, px(np.concatenate([ou, ol[::-1]])), lip)
    if ph["open"] > 0:
        R.fill_poly(img, px(np.concatenate([iu, il[::-1]])), (55, 22, 28))
        R.fill_poly(img, px(np.concatenate([iu, iu[::-1] + [0, 0.008 * ph["open"]]])), (235, 232, 220))
    else:
        R.polyline(img, px(iu), lip * 0.55, 0.004 * unit)

    # marks: dark soft disks, exact centres
    marks = np.array([[mk.x, mk.y] for mk in ident.marks], np.float64).reshape(-1, 2)
    for mk, c in zip(ident.marks, px(marks)):
        R.soft_disk(img, c, mk.radius * unit, mk.color)

    if ph["glasses"]:
        _draw_glasses(img, ident, px, unit)

    img = _light(img, ph, size)
    landmarks = np.concatenate([px(lm), px(marks)]).astype(np.float32)
    return SyntheticImage(image=img, landmarks=landmarks, mark_slice=slice(NUM_IBUG, NUM_IBUG + len(ident.marks)),
                          eye_centers=np.array(eye_centers, np.float32), iris_radius=float(iris_r),
                          matrix=m.astype(np.float32), glasses=ph["glasses"])


def _background(ph: dict, size: int) -> np.ndarray:
    """Two-colour smooth noise from the photo's own background stream, optionally with stripes."""
    rng = np.random.default_rng(ph["bg_rng"])
    tex = R.smooth_noise(rng, ph["bg_grid"], size)[..., None]
    c1, c2 = ph["bg"]
    img = c1 * (0.5 + 0.5 * tex) + c2 * (0.5 - 0.5 * tex)
    on, freq, ang, amp = ph["stripes"]
    if on:
        g = (np.arange(size, dtype=np.float32) + 0.5) / size
        proj = np.cos(ang) * g[None, :] + np.sin(ang) * g[:, None]
        img = img * (1 + amp * np.sin(2 * math.pi * freq * proj))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 40) -> np.ndarray:
    """Polygon (n, 2) of the ellipse with centre (cx, cy) and half axes (ax, ay)."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def _draw_brow(img: np.ndarray, pts: np.ndarray, thick: float, color) -> None:
    """Brow band around the outer->inner centre line, thicker at the inner end."""
    t = np.linspace(0, 1, len(pts))
    half = thick / 2 * (0.45 + 0.55 * t)[:, None]
    d = np.concatenate([pts[1:2] - pts[:1], pts[2:] - pts[:-2], pts[-1:] - pts[-2:-1]])
    n = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9)
    R.fill_poly(img, np.concatenate([pts + n * half, (pts - n * half)[::-1]]), color)


def _draw_glasses(img: np.ndarray, ident: Identity, px, unit: float) -> None:
    """Frames (round or rectangular), temples and bridge; ``px`` maps canonical points to pixels."""
    r, thick = ident.glasses_radius, max(1.0, 0.007 * unit)
    ye = ident.eye_y
    for side in (-1, 1):
        cx = 0.5 + side * ident.eye_spacing / 2
        shape = _ellipse(cx, ye, r, r * 0.8) if ident.glasses_round else \
            np.array([[cx - r, ye - 0.8 * r], [cx + r, ye - 0.8 * r], [cx + r, ye + 0.75 * r], [cx - r, ye + 0.75 * r]])
        R.polyline(img, px(shape), ident.glasses_color, thick, closed=True)
        R.polyline(img, px([[cx + side * r, ye - 0.3 * r], [0.5 + side * (ident.face_width + 0.01), ye - 0.3 * r]]),
                   ident.glasses_color, thick)
    gap = ident.eye_spacing / 2 - r
    R.polyline(img, px([[0.5 - gap, ye - 0.4 * r], [0.5, ye - 0.55 * r], [0.5 + gap, ye - 0.4 * r]]),
               ident.glasses_color, thick)


def _light(img: np.ndarray, ph: dict, size: int) -> np.ndarray:
    """Linear lighting gradient, global gain and per-channel colour cast (multiplicative)."""
    g = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    ramp = 1 + 2 * ph["light"] * (math.cos(ph["light_dir"]) * g[None, :] + math.sin(ph["light_dir"]) * g[:, None])
    gains = (ph["gain"] * ph["cast"]).astype(np.float32)
    out = img.astype(np.float32) * ramp[..., None] * gains[None, None, :]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
