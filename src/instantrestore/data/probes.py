"""Pixel probes that check synthetic landmarks against the pixels: is there a dark mark here,
what colour is this iris. Used by the tests, and by evaluation to ask whether a restoration
brought back details that the degradation destroyed.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def mark_contrast(image: np.ndarray, xy: Sequence[float], scale: float = 1.0, radius: float | None = None) -> float:
    """How dark a spot at pixel ``xy`` is: median luma of a ring around it minus the darkest luma
    of its core. uint8 (H, W, 3) RGB input. Without ``radius``: core within 1 px, ring 3-5 px
    (both times ``scale`` = size / 128; clean 1-3 px marks score above ~25, skin alone and such
    marks after ``sr8`` below ~10). With the mark's ``radius`` in pixels: core within
    max(1, radius / 2) px, ring from radius + 2 to radius + 4 px, so a large mark is measured
    against the skin around it rather than against itself.
    """
    h, w = image.shape[:2]
    x, y = float(xy[0]), float(xy[1])
    if radius is None:
        r_core, r_in, r_out = scale + 0.5, 3 * scale, 5 * scale
    else:
        r_core, r_in, r_out = max(1.0, radius / 2), radius + 2, radius + 4
    x0, x1 = max(0, int(x - r_out - 1)), min(w, int(x + r_out + 2))
    y0, y1 = max(0, int(y - r_out - 1)), min(h, int(y + r_out + 2))
    lum = _luma(image[y0:y1, x0:x1])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.hypot(xx - x, yy - y)
    inner, ring = lum[d <= r_core], lum[(d >= r_in) & (d <= r_out)]
    if inner.size == 0 or ring.size == 0:
        return 0.0
    return float(np.median(ring) - inner.min())


def iris_color(image: np.ndarray, center: Sequence[float], radius: float, eye_polygon: np.ndarray) -> np.ndarray:
    """Median RGB (float32 [3]) of the iris annulus (0.4-0.95 radius, outside the pupil) inside the
    eye opening given by the six eye landmarks ``eye_polygon`` [6, 2] (pixels)."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(eye_polygon) * 16).astype(np.int32)], 1, shift=4)
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(xx - float(center[0]), yy - float(center[1]))
    sel = (d >= 0.4 * radius) & (d <= 0.95 * radius) & (mask > 0)
    if not sel.any():
        raise ValueError(f"no iris pixels at {tuple(center)} with radius {radius}")
    return np.median(image[sel].astype(np.float32), axis=0)
