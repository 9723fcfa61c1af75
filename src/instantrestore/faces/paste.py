"""Paste restored crops back into the photo: inverse warp plus a feathered soft mask.

Follows facexlib's ``paste_faces_to_input_image``: warp an all-ones mask with the inverse
matrix, erode it so resampled edges never show, then blur it so the seam fades over a
band proportional to the face size.
"""
from __future__ import annotations

import cv2
import numpy as np

from .align import invert_affine


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
