"""Restoration metrics (per image) and the ``eval`` report; see docs/eval.md."""
from ..faces.landmark_distance import (ALD_EYE, ALD_MOUTH, affine_landmark_distance, ald_eye, ald_mouth,
                                      l2_landmark_distance)
from .image import LPIPS, MetricUnavailable, ms_ssim, psnr, ssim, to_pixels

__all__ = [
    "LPIPS", "MetricUnavailable", "ms_ssim", "psnr", "ssim", "to_pixels",
    "ALD_EYE", "ALD_MOUTH", "affine_landmark_distance", "ald_eye", "ald_mouth", "l2_landmark_distance",
]
