"""Colour correction of a restored face toward the colours of its input.

A restorer can shift a face's colours (skin tone, white balance); these fixes keep the restored
detail and take the colour from the degraded input, whose low frequencies are still right:

- ``'wavelet'``: the restored crop's high frequencies plus the input's low frequencies, split by a
  stack of Gaussian blurs of doubling width (an a-trous wavelet decomposition, ``levels`` deep);
- ``'adain'``: each channel of the restored crop shifted and scaled to the input's mean and spread;
- ``'none'``: unchanged.

Images are uint8 RGB (S, S, 3); the input is resized to the restored crop's side first.
"""
from __future__ import annotations

import cv2
import numpy as np

COLOR_FIXES = ("none", "wavelet", "adain")


def parse_color_fix(method: str) -> str:
    """``method`` checked against ``COLOR_FIXES`` (ValueError naming them otherwise)."""
    if method not in COLOR_FIXES:
        raise ValueError(f"colour fix must be one of {', '.join(COLOR_FIXES)}, not {method!r}")
    return method


def low_frequencies(image: np.ndarray, levels: int = 5) -> np.ndarray:
    """float32 (H, W, 3): ``image`` blurred by ``levels`` Gaussian blurs of sigma 1, 2, 4, ... (the
    residual of an a-trous wavelet decomposition); reflect padding at the borders."""
    low = image.astype(np.float32)
    for level in range(levels):
        sigma = float(2 ** level)
        low = cv2.GaussianBlur(low, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
    return low


def color_fix(restored: np.ndarray, source: np.ndarray, method: str = "wavelet", levels: int = 5) -> np.ndarray:
    """``restored`` (uint8 RGB (S, S, 3)) with the colours of ``source`` (uint8 RGB (T, T, 3), the crop
    the model was given; resized to S), by ``method`` (``COLOR_FIXES``). Returns a new uint8 array."""
    method = parse_color_fix(method)
    if restored.ndim != 3 or restored.shape[2] != 3 or source.ndim != 3 or source.shape[2] != 3:
        raise ValueError(f"expected two RGB crops (S, S, 3), got {restored.shape} and {source.shape}")
    if method == "none":
        return restored.copy()
    h, w = restored.shape[:2]
    src = source if source.shape[:2] == (h, w) else cv2.resize(
        source, (w, h), interpolation=cv2.INTER_AREA if source.shape[0] > h else cv2.INTER_CUBIC)
    out = restored.astype(np.float32)
    if method == "wavelet":
        out = out - low_frequencies(out, levels) + low_frequencies(src, levels)
    else:
        s = src.reshape(-1, 3).astype(np.float32)
        r = out.reshape(-1, 3)
        out = (out - r.mean(0)) / (r.std(0) + 1e-5) * s.std(0) + s.mean(0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
