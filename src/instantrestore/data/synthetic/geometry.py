"""Canonical geometry of a synthetic face: outline, lids, lips, brows, hair polygons, the 68 iBUG
landmarks, and the per-photo map from the canonical face frame to pixels.

The canonical frame is the identity's neutral face in units of the image side (face centred near
(0.5, 0.5)); everything here is deterministic given an ``Identity`` and a photo's parameters.
"""
from __future__ import annotations

import math

import numpy as np

from .identity import Identity

NUM_IBUG = 68


def face_outline(w: float, h: float, fh: float, taper: float, power: float, ye: float, n_jaw: int = 49,
                 n_top: int = 24) -> np.ndarray:
    """Dense face outline: jaw from the image-left temple over the chin, then the skull top back.
    w: half width, h: eye level to chin, fh: forehead height, taper/power: jaw shape, ye: eye level
    (the ``Identity`` fields of the same meaning)."""
    a = math.pi + math.pi * np.linspace(0, 1, n_jaw)
    c, s = np.cos(a), -np.sin(a)
    e = 2.0 / power
    xs, ys = np.sign(c) * np.abs(c) ** e, np.abs(s) ** e
    jaw = np.stack([0.5 + w * xs * (1 - taper * ys ** 2), ye + h * ys], 1)
    b = np.linspace(0, math.pi, n_top + 2)[1:-1]
    top = np.stack([0.5 + w * np.cos(b), ye - fh * np.sin(b) ** 0.8], 1)
    return np.concatenate([jaw, top])


def eye_curves(ident: Identity, openness: float, side: int, n: int = 13) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid curves (n points each, left to right) of one eye; side -1 = image left."""
    f = np.linspace(-1, 1, n)
    cx = 0.5 + side * ident.eye_spacing / 2
    hw, hh = ident.eye_width / 2, ident.eye_height / 2
    tilt = -ident.eye_tilt * hw * (side * f)  # outer corner up for positive tilt
    upper = np.stack([cx + hw * f, ident.eye_y + tilt - hh * openness * (1 - f ** 2) ** 0.6 * (1 + 0.15 * side * f)], 1)
    lower = np.stack([cx + hw * f, ident.eye_y + tilt + 0.8 * hh * openness * (1 - f ** 2) ** 0.8], 1)
    return upper, lower


def mouth_curves(ident: Identity, smile: float, open_: float,
                 n: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outer-upper, inner-upper, inner-lower, outer-lower lip curves (n points, left to right)."""
    f = np.linspace(-1, 1, n)
    cx, my, hw = 0.5, ident.eye_y + ident.mouth_offset, ident.mouth_width / 2
    s = -smile * 0.02 * f ** 2
    prof = np.sqrt(np.clip(1 - f ** 2, 0, 1))
    o = open_ * 0.035
    bow = 1 - 0.3 * np.exp(-(f / 0.2) ** 2)
    x = cx + hw * f
    xi = cx + 0.88 * hw * f
    return (np.stack([x, my + s - o / 2 * prof - ident.upper_lip * prof * bow], 1),
            np.stack([xi, my + 0.88 * s - o / 2 * prof], 1),
            np.stack([xi, my + 0.88 * s + o / 2 * prof], 1),
            np.stack([x, my + s + o / 2 * prof + ident.lower_lip * prof], 1))


def _brow(ident: Identity, n: int = 5) -> np.ndarray:
    """Image-left brow from outer to inner end (n points)."""
    t = np.linspace(-1, 1, n)
    cx = 0.5 - ident.eye_spacing / 2 + 0.008
    y = ident.eye_y - ident.brow_height - ident.brow_arch * (1 - ((t + 0.3) / 1.3) ** 2) + ident.brow_slant * t
    return np.stack([cx + t * ident.brow_length / 2, y], 1)


def _mirror(pts: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - pts[:, 0], pts[:, 1]], 1)


def canonical_landmarks(ident: Identity, smile: float = 0.0, open_: float = 0.0, openness: float = 1.0) -> np.ndarray:
    """The 68 iBUG landmarks (float64 [68, 2]) of ``ident`` in the canonical face frame."""
    outline = face_outline(ident.face_width, ident.face_height, ident.forehead_height, ident.jaw_taper,
                           ident.jaw_power, ident.eye_y)
    jaw = outline[0:49:3]
    brow_l = _brow(ident)
    brow_r = _mirror(brow_l)[::-1]
    ye, tip = ident.eye_y, ident.eye_y + ident.nose_length
    bridge = np.stack([np.full(4, 0.5), np.linspace(ye - 0.005, tip, 4)], 1)
    nw = ident.nose_width / 2
    nostrils = np.stack([0.5 + nw * np.array([-1, -0.5, 0, 0.5, 1]), tip + np.array([0.006, 0.018, 0.022, 0.018, 0.006])], 1)
    eyes = []
    for side in (-1, 1):
        up, lo = eye_curves(ident, openness, side)
        eyes.append(np.stack([up[0], up[4], up[8], up[12], lo[8], lo[4]]))
    ou, iu, il, ol = mouth_curves(ident, smile, open_)
    k = [0, 4, 8, 12, 16, 20, 24]
    outer = np.concatenate([ou[k], ol[[20, 16, 12, 8, 4]]])
    inner = np.concatenate([iu[[0, 8, 12, 16, 24]], il[[16, 12, 8]]])
    return np.concatenate([jaw, brow_l, brow_r, bridge, nostrils, eyes[0], eyes[1], outer, inner])


def hair_polygons(ident: Identity) -> tuple[np.ndarray, np.ndarray]:
    """Back hair (behind the head) and fringe (over the forehead) polygons, canonical frame."""
    w, fh, ye, v = ident.face_width, ident.forehead_height, ident.eye_y, ident.hair_volume
    b = np.linspace(0, math.pi, 25)
    top = np.stack([0.5 + (w + v) * np.cos(b), ye - 0.02 - (fh + v) * np.sin(b) ** 0.8], 1)
    y_end = ye + ident.hair_length
    back = np.concatenate([[[0.5 + (w + v) * 1.05, y_end]], top, [[0.5 - (w + v) * 1.05, y_end]]])
    xn = np.linspace(-1, 1, 25)
    y_top = ye - fh
    hl = y_top + ident.hairline + (ye - 0.045 - y_top - ident.hairline) * np.abs(xn) ** ident.hairline_flat
    hl = hl - 0.03 * np.exp(-((xn - ident.parting) / 0.1) ** 2)
    line = np.stack([0.5 + (w + 0.004) * xn, hl], 1)
    over = np.stack([0.5 + (w + v * 0.6) * np.cos(b), ye - 0.03 - (fh + v * 0.6) * np.sin(b) ** 0.8], 1)
    return back, np.concatenate([line, over])


def pixel_matrix(ph: dict, size: int) -> np.ndarray:
    """Canonical -> pixel affine [2, 3]: similarity about (0.5, 0.5), then x * size - 0.5."""
    c, s = math.cos(ph["angle"]) * ph["scale"], math.sin(ph["angle"]) * ph["scale"]
    a = np.array([[c, -s], [s, c]]) * size
    t = (np.array([0.5, 0.5]) + ph["shift"] - np.array([[c, -s], [s, c]]) @ np.array([0.5, 0.5])) * size - 0.5
    return np.concatenate([a, t[:, None]], 1)
