"""Paste restored crops back into the photo: inverse warp plus a feathered mask.

``paste_face_masked`` is the paste of whole-photo restores (and of video frames): one restored crop
into a copy of a photo (the background, at any upscale), through a face-shaped mask from the
landmarks (``faces.mask``) so that only face pixels change, and only inside the face's box (memory
grows with the face, not the photo). ``paste_faces`` / ``paste_restored`` are the square paste of
the ``paste`` command: facexlib's ``paste_faces_to_input_image`` (warp an all-ones mask with the
inverse matrix, erode it, blur it over a band proportional to the face size).

``paste_enlargement`` / ``too_small`` are the one rule both ``paste`` and ``restore`` use for a
restored crop too small for the face it replaces.
"""
from __future__ import annotations

import cv2
import numpy as np

from .align import invert_affine
from .mask import feather_width, polygon_box, polygon_mask

STRIP_ROWS = 512  # rows of a face's box blended at a time (bounds the paste's memory for very large faces)
MAX_PASTE_ENLARGEMENT = 2.0  # a face over twice the restored crop's side in the photo: restoring loses detail


def soft_mask(matrix: np.ndarray, crop_size: int, photo_shape: tuple[int, int]) -> np.ndarray:
    """Feathered mask (H, W) float32 in [0, 1] of where a crop lands in the photo.

    ``matrix`` maps photo pixels to crop pixels; ``photo_shape`` is (H, W).
    """
    h, w = photo_shape[:2]
    inverse = invert_affine(matrix)
    ones = np.ones((crop_size, crop_size), dtype=np.float32)
    mask = cv2.warpAffine(ones, inverse, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    area = float(mask.sum())
    edge = max(1, int(area ** 0.5) // 20)  # feather band: 5% of the face side
    mask = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
    mask = cv2.GaussianBlur(mask, (2 * edge + 1, 2 * edge + 1), 0)
    return np.clip(mask, 0.0, 1.0)


def paste_face(photo: np.ndarray, crop: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Blend one (restored) crop back into a copy of the photo; both uint8 RGB. Returns the new photo."""
    return paste_faces(photo, [crop], [matrix])


def paste_faces(photo: np.ndarray, crops: list[np.ndarray], matrices: list[np.ndarray]) -> np.ndarray:
    """Blend several crops into a copy of ``photo`` (uint8 RGB (H, W, 3)), in order; the input is not modified."""
    if len(crops) != len(matrices):
        raise ValueError(f"got {len(crops)} crops but {len(matrices)} matrices")
    h, w = photo.shape[:2]
    out = photo.astype(np.float32)
    for crop, matrix in zip(crops, matrices):
        if crop.ndim != 3 or crop.shape[0] != crop.shape[1]:
            raise ValueError(f"expected a square (S, S, 3) crop, got {crop.shape}")
        inverse = invert_affine(matrix)
        warped = cv2.warpAffine(crop.astype(np.float32), inverse, (w, h),
                                flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        mask = soft_mask(matrix, crop.shape[0], (h, w))[..., None]
        out = mask * warped + (1.0 - mask) * out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def scale_matrix(matrix: np.ndarray, crop_size: int, new_size: int) -> np.ndarray:
    """A photo -> crop matrix for the same crop resized from ``crop_size`` to ``new_size`` pixels
    (crop coordinates scale with the side), e.g. to paste a model's 128 px output over a 512 px crop."""
    return np.asarray(matrix, dtype=np.float64) * (new_size / crop_size)


def paste_restored(photo: np.ndarray, restored: list[np.ndarray], matrices: list[np.ndarray],
                   crop_sizes: list[int]) -> np.ndarray:
    """``paste_faces`` for restored crops of any square size: crop i replaces the ``crop_sizes[i]`` px
    crop that ``matrices[i]`` (photo -> crop) cut; each matrix is rescaled to its restored crop's side."""
    if not len(restored) == len(matrices) == len(crop_sizes):
        raise ValueError(f"got {len(restored)} crops, {len(matrices)} matrices and {len(crop_sizes)} crop sizes")
    scaled = [scale_matrix(m, size, crop.shape[0]) for crop, m, size in zip(restored, matrices, crop_sizes)]
    return paste_faces(photo, list(restored), scaled)


def paste_region(matrix: np.ndarray, crop_size: int, photo_shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W): the photo pixels a paste of a ``crop_size`` crop through ``matrix`` can change
    (where ``soft_mask`` > 0); every other pixel keeps its exact input value."""
    return soft_mask(matrix, crop_size, photo_shape) > 0


def upscale_points(points: np.ndarray, upscale: float) -> np.ndarray:
    """(N, 2) photo pixels -> the same points in the photo enlarged ``upscale`` times, with pixel centres
    as OpenCV's ``resize`` aligns them (input p -> (p + 0.5) * upscale - 0.5)."""
    return (np.asarray(points, dtype=np.float64) + 0.5) * float(upscale) - 0.5


def upscaled_matrix(matrix: np.ndarray, upscale: float) -> np.ndarray:
    """The photo -> crop matrix for the same photo enlarged ``upscale`` times (``upscale_points`` undone,
    then ``matrix``), so a face pasted there lines up with a background made by ``cv2.resize``."""
    m = np.asarray(matrix, dtype=np.float64)
    u = float(upscale)
    return np.concatenate([m[:, :2] / u, (m[:, :2] @ np.full(2, 0.5 / u - 0.5) + m[:, 2])[:, None]], axis=1)


def face_side(matrix: np.ndarray, crop_size: int) -> float:
    """Side in photo pixels of the square a ``crop_size`` crop cut through ``matrix`` (photo -> crop)."""
    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, dtype=np.float64)[:, :2]))))
    return crop_size / scale


def paste_enlargement(matrix: np.ndarray, crop_size: int, restored_side: int, upscale: float = 1.0) -> float:
    """How many times a ``restored_side`` crop is enlarged when pasted over the face that a
    ``crop_size`` crop cut through ``matrix``, in the photo enlarged ``upscale`` times (< 1: shrunk)."""
    return face_side(matrix, crop_size) * upscale / restored_side


def too_small(matrix: np.ndarray, crop_size: int, restored_side: int) -> bool:
    """Whether a ``restored_side`` crop is too small for the face it replaces: the face is more than
    ``MAX_PASTE_ENLARGEMENT`` times larger in the photo than the restored crop, so restoring it at that
    resolution would lose detail the photo has (pasted without upscaling, the crop would be enlarged
    over 2x). Independent of the output's upscale: ``paste`` and ``restore`` refuse the same faces
    unless told otherwise (``--allow-small``)."""
    return paste_enlargement(matrix, crop_size, restored_side) > MAX_PASTE_ENLARGEMENT + 1e-6


def crop_outline(matrix: np.ndarray, side: int) -> np.ndarray:
    """Corners (4, 2) in photo pixels of a ``side`` crop cut through ``matrix`` (photo -> crop)."""
    corners = np.array([[[0, 0], [side, 0], [side, side], [0, side]]], np.float64)
    return cv2.transform(corners, invert_affine(matrix))[0]


def paste_alpha(matrix: np.ndarray, side: int, polygon: np.ndarray | None, shape: tuple[int, int],
                feather: int | None = None, rows: tuple[int, int] | None = None
                ) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Where and how much ``paste_face_masked`` blends: (box (x0, y0, x1, y1) in the photo, end exclusive;
    mask float32 (y1 - y0, x1 - x0) in [0, 1]) for a ``side`` crop through ``matrix`` (photo -> crop)
    into a photo of ``shape`` (H, W), through ``polygon`` (or the crop's square for None). ``rows``
    (y0, y1): only those photo rows of the box (the same values as the whole box's there)."""
    square = crop_outline(matrix, side)
    if polygon is not None and len(polygon) < 3:
        raise ValueError(f"a face outline needs at least 3 points, got {len(polygon)}")
    outline = square if polygon is None else np.asarray(polygon, dtype=np.float64)
    band = feather_width(square) // 2 if polygon is None else (feather or feather_width(outline))
    x0, y0, x1, y1 = polygon_box(outline, shape)
    if rows is not None:
        y0, y1 = max(y0, rows[0]), min(y1, rows[1])
    size = (max(0, y1 - y0), max(0, x1 - x0))
    if not all(size):
        return (x0, y0, x1, y1), np.zeros(size, np.float32)
    mask = polygon_mask(square, size, band, offset=(x0, y0))
    if polygon is not None:
        mask *= polygon_mask(outline, size, band, offset=(x0, y0))
    return (x0, y0, x1, y1), mask


def paste_face_masked(photo: np.ndarray, crop: np.ndarray, matrix: np.ndarray,
                      polygon: np.ndarray | None = None, feather: int | None = None,
                      strip: int = STRIP_ROWS, inplace: bool = False) -> np.ndarray:
    """Blend one restored crop into a copy of ``photo``; the input is not modified.

    photo: uint8 RGB (H, W, 3), e.g. the upscaled background; crop: uint8 RGB (S, S, 3), any S;
    matrix: 2x3 photo -> crop pixels for this crop's side (``scale_matrix`` / ``upscaled_matrix``
    adapt an alignment matrix); polygon: (N, 2) face outline in photo pixels (``faces.mask.face_polygon``
    of the landmarks times the upscale), or None for the square crop. The mask (``paste_alpha``) is the
    outline's feathered mask (``polygon_mask``, ``feather`` pixels, default ``feather_width``) times the
    crop square's: every pixel outside the outline (or the square) keeps its exact value. Only the
    outline's box is warped, ``strip`` rows at a time, so time grows with the face and memory with
    one strip of it, not with the photo. ``inplace``: write into ``photo`` and return it (no copy of a
    large output; for a caller that owns the array).
    """
    if crop.ndim != 3 or crop.shape[0] != crop.shape[1] or photo.ndim != 3:
        raise ValueError(f"expected a (H, W, 3) photo and a square (S, S, 3) crop, got {photo.shape} and {crop.shape}")
    if polygon is not None and len(polygon) < 3:
        raise ValueError(f"a face outline needs at least 3 points, got {len(polygon)}")
    out, source, matrix = photo if inplace else photo.copy(), crop.astype(np.float32), np.asarray(matrix, float)
    top, bottom = polygon_box(crop_outline(matrix, crop.shape[0]) if polygon is None else polygon, photo.shape)[1::2]
    for start in range(top, bottom, max(1, strip)):
        (x0, y0, x1, y1), mask = paste_alpha(matrix, crop.shape[0], polygon, photo.shape[:2], feather,
                                             rows=(start, start + max(1, strip)))
        if not mask.size:
            continue
        # where each photo pixel of the strip falls in the crop, from absolute coordinates (so strips agree)
        xs, ys = np.arange(x0, x1, dtype=np.float64)[None, :], np.arange(y0, y1, dtype=np.float64)[:, None]
        map_x = (matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]).astype(np.float32)
        map_y = (matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]).astype(np.float32)
        warped = cv2.remap(source, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        region = photo[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(np.rint(region + mask[..., None] * (warped - region)), 0, 255).astype(np.uint8)
    return out
