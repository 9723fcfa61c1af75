"""Anti-aliased raster primitives for the synthetic renderer (uint8 RGB canvases, pixel coords).

Pixel centres sit at integer coordinates, matching OpenCV's fixed-point drawing with ``shift``.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Color = Sequence[float] | np.ndarray  # RGB (or one channel for a mask), 0-255
SHIFT = 4  # sub-pixel bits for OpenCV drawing: edges land at 1/16 px at every resolution
_ONE = 1 << SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def fill_poly(img: np.ndarray, points: np.ndarray, color: Color) -> None:
    """Fill a polygon (N, 2) of pixel coordinates with an anti-aliased edge, in place."""
    cv2.fillPoly(img, [_fixed(points)], _color(color), lineType=cv2.LINE_AA, shift=SHIFT)


def polyline(img: np.ndarray, points: np.ndarray, color: Color, thickness_px: float, closed: bool = False) -> None:
    """Anti-aliased polyline through (N, 2) pixel coordinates; thickness rounded to >= 1 px."""
    thickness = max(1, int(round(thickness_px)))
    cv2.polylines(img, [_fixed(points)], closed, _color(color), thickness, lineType=cv2.LINE_AA, shift=SHIFT)


def _color(color: Color) -> tuple[float, ...]:
    return tuple(float(c) for c in color)


def soft_disk(img: np.ndarray, center: Sequence[float], radius: float, color: Color,
              mask_poly: np.ndarray | None = None, edge_dark: float = 0.0) -> None:
    """Composite a disk with exact area-like coverage (1 px ramp) in place.

    center: (x, y) pixels; radius: pixels (works below 1 px for tiny marks); mask_poly: optional
    polygon (N, 2) the disk is clipped to (an eye opening); edge_dark: darken the outer 25 % of
    the radius by this fraction (iris limbal ring).
    """
    h, w = img.shape[:2]
    cx, cy = float(center[0]), float(center[1])
    x0, x1 = max(0, int(np.floor(cx - radius - 1))), min(w, int(np.ceil(cx + radius + 2)))
    y0, y1 = max(0, int(np.floor(cy - radius - 1))), min(h, int(np.ceil(cy + radius + 2)))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    alpha = np.clip(radius + 0.5 - d, 0.0, 1.0)
    if mask_poly is not None:
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        fill_poly(mask, np.asarray(mask_poly) - (x0, y0), (255,))
        alpha = alpha * (mask.astype(np.float32) / 255.0)
    col = np.asarray(color, np.float32)[None, None, :]
    if edge_dark > 0:
        ring = np.clip((d / max(radius, 1e-3) - 0.75) / 0.25, 0.0, 1.0)[..., None]
        col = col * (1.0 - edge_dark * ring)
    patch = img[y0:y1, x0:x1].astype(np.float32)
    a = alpha[..., None]
    img[y0:y1, x0:x1] = np.clip(patch * (1 - a) + col * a + 0.5, 0, 255).astype(np.uint8)


def smooth_noise(rng: np.random.Generator, grid: int, size: int) -> np.ndarray:
    """Low-frequency noise (size, size) float32 in about [-1, 1]: a random grid, bicubic-upsampled.

    The grid is resolution independent, so the same draw gives the same pattern at any size.
    """
    coarse = rng.uniform(-1.0, 1.0, size=(grid, grid)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
