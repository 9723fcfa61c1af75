"""Face-shaped paste masks from landmarks: only face pixels change when a restored crop is pasted.

``face_polygon`` turns landmarks into a closed face outline in photo pixels: dlib's 68 points give
the jaw line (points 0-16) closed over the forehead by the eyebrows (17-26) lifted along the face's
upward axis (the forehead has no landmark); mediapipe's 478 points give their face oval, which
already includes the forehead. ``polygon_mask`` rasterises an outline into a feathered mask that is
exactly 0 outside the outline (the feather runs inward), so pixels outside it keep their values.

Coordinates are (x, y) float pixels; masks are float32 in [0, 1].
"""
from __future__ import annotations

import cv2
import numpy as np

# mediapipe face mesh: the face oval (FACEMESH_FACE_OVAL), in order around the face from the forehead top
MEDIAPIPE_FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                       152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
# how far the eyebrows are lifted to reach the hairline, as a fraction of the eye-to-chin distance:
# FOREHEAD_LIFT[0] at the outer eyebrow ends, FOREHEAD_LIFT[1] at the middle (face thirds: the brow-to-
# hairline third is about half the eye-to-chin distance)
FOREHEAD_LIFT = (0.3, 0.5)
FEATHER = 0.06  # feather band of the mask: 6% of the square root of the outline's area


def face_polygon(landmarks: np.ndarray) -> np.ndarray:
    """Face outline (N, 2) float64 photo pixels from (68, 2) dlib or (478, 2) mediapipe landmarks.

    68 points: convex hull of the jaw line and the eyebrows lifted to the hairline (``FOREHEAD_LIFT``).
    478 points: mediapipe's face oval. Raises ValueError for other shapes."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[1] != 2 or lm.shape[0] not in (68, 478):
        raise ValueError(f"expected (68, 2) or (478, 2) landmarks, got {lm.shape}")
    if lm.shape[0] == 478:
        return lm[list(MEDIAPIPE_FACE_OVAL)]
    eyes = (lm[36:42].mean(0) + lm[42:48].mean(0)) / 2
    up = eyes - lm[8]  # chin -> between the eyes
    height = float(np.hypot(*up))
    if height < 1e-6:
        return np.zeros((0, 2))
    t = np.linspace(0.0, 1.0, 10)  # eyebrow points 17..26, outer end to outer end
    lift = FOREHEAD_LIFT[0] + (FOREHEAD_LIFT[1] - FOREHEAD_LIFT[0]) * np.sin(np.pi * t)
    forehead = lm[17:27] + lift[:, None] * up
    points = np.concatenate([lm[0:17], forehead]).astype(np.float32)
    return cv2.convexHull(points)[:, 0, :].astype(np.float64)


def polygon_area(polygon: np.ndarray) -> float:
    """Area (pixels^2) of a closed outline (N, 2); 0 for fewer than 3 points."""
    p = np.asarray(polygon, dtype=np.float64)
    if len(p) < 3:
        return 0.0
    return float(abs(np.dot(p[:, 0], np.roll(p[:, 1], 1)) - np.dot(p[:, 1], np.roll(p[:, 0], 1))) / 2)


def feather_width(polygon: np.ndarray) -> int:
    """Feather band in pixels for an outline: ``FEATHER`` of the square root of its area, at least 1."""
    return max(1, int(round(FEATHER * polygon_area(polygon) ** 0.5)))


def polygon_box(polygon: np.ndarray, shape: tuple[int, int], margin: int = 2) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1), end exclusive, around an outline plus ``margin``, clipped to ``shape`` (H, W)."""
    p = np.asarray(polygon, dtype=np.float64)
    h, w = shape[:2]
    x0, y0 = np.floor(p.min(0)).astype(int) - margin
    x1, y1 = np.ceil(p.max(0)).astype(int) + margin + 1
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int], feather: int | None = None,
                 offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Feathered mask (H, W) float32 in [0, 1] of an outline: 1 well inside, fading to 0 over ``feather``
    pixels (default ``feather_width``) towards the outline, and exactly 0 on every pixel that
    ``inside_polygon`` says is outside. ``offset`` (x, y): the photo pixel at the mask's (0, 0), to
    build the mask of a region of the photo only."""
    h, w = shape[:2]
    band = feather_width(polygon) if feather is None else max(1, int(feather))
    pad = 2 * band + 1  # room for the erosion and the blur: a region's mask equals the photo's there
    canvas = _raster(polygon, (int(offset[0]) - pad, int(offset[1]) - pad), (h + 2 * pad, w + 2 * pad))
    # erode by the band, then blur within the band: the blur's support never leaves the filled outline
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band + 1, 2 * band + 1))
    core = cv2.erode(canvas, kernel).astype(np.float32)
    mask = cv2.GaussianBlur(core, (2 * band + 1, 2 * band + 1), band / 2.0)
    mask *= canvas  # guard: float round-off of the blur stays inside the outline
    return np.clip(mask[pad:pad + h, pad:pad + w], 0.0, 1.0)


def inside_polygon(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W): the pixels ``polygon_mask`` may change (the rasterised outline)."""
    return _raster(polygon, (0, 0), shape[:2]).astype(bool)


def _pixels(points: np.ndarray) -> np.ndarray:
    """Outline vertices as int32 pixels, rounded half up so that shifting by whole pixels commutes."""
    return np.floor(np.asarray(points, dtype=np.float64) + 0.5).astype(np.int32)


def _raster(polygon: np.ndarray, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W): 1 on the pixels of the filled outline, for the window of ``shape`` whose (0, 0) is photo
    pixel ``origin`` (x, y). The outline is filled in its own box and then cut, never clipped by the window,
    so every window (a photo, a face's box, a strip of it) sees the same pixels."""
    h, w = shape[:2]
    canvas = np.zeros((h, w), np.uint8)
    if len(polygon) < 3:
        return canvas
    points = _pixels(polygon)
    low, high = points.min(0), points.max(0) + 1
    filled = np.zeros((high[1] - low[1], high[0] - low[0]), np.uint8)
    cv2.fillPoly(filled, [points - low], 1)
    x0, y0 = max(origin[0], low[0]), max(origin[1], low[1])
    x1, y1 = min(origin[0] + w, high[0]), min(origin[1] + h, high[1])
    if x1 > x0 and y1 > y0:
        canvas[y0 - origin[1]:y1 - origin[1], x0 - origin[0]:x1 - origin[0]] = \
            filled[y0 - low[1]:y1 - low[1], x0 - low[0]:x1 - low[0]]
    return canvas
