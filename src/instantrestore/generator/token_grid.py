"""Pixel <-> token geometry of an attention layer's grid, for NumPy arrays and torch tensors alike.

Shared by the landmark attention loss (``losses.landmark_attention``) and the benchmark's
attention probes (``bench.cases``), so both agree on where a landmark falls.

Convention: points are pixel (x, y) with pixel centres at integers, so pixel i covers
[i - 0.5, i + 0.5) and an image W px wide covers x in [-0.5, W - 0.5): half open, like the
continuous coordinate u = x + 0.5 in [0, W). A grid of h x w tokens over an H x W image puts
token column j over u in [j * W / w, (j + 1) * W / w), so the token containing x is
floor((x + 0.5) * w / W), and its centre is at token coordinate j (token centres at integers
too): a point sits at ((x + 0.5) * w / W - 0.5, (y + 0.5) * h / H - 0.5) in token units.
A point exactly on the far edge (x == W - 0.5, i.e. u == W) lies outside the image.
"""
from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _grid_scale(xy: Array, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> Array:
    """(w / W, h / H) in the library and float dtype of ``xy``."""
    values = [grid_hw[1] / image_hw[1], grid_hw[0] / image_hw[0]]
    if isinstance(xy, torch.Tensor):
        return xy.new_tensor(values)
    return np.asarray(values, dtype=xy.dtype if np.issubdtype(xy.dtype, np.floating) else np.float64)


def token_coords(xy: Array, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> Array:
    """Pixel (x, y) [..., 2] -> continuous token coordinates (col, row) [..., 2] on a grid_hw grid over
    an image_hw image; token centres at integers. Same library and float dtype as ``xy``."""
    return (xy + 0.5) * _grid_scale(xy, image_hw, grid_hw) - 0.5


def inside_image(xy: Array, image_hw: tuple[int, int]) -> Array:
    """[..., 2] pixel (x, y) -> [...] bool: finite and within the image's half-open pixel area
    [-0.5, W - 0.5) x [-0.5, H - 0.5) (see the module docstring)."""
    finite = torch.isfinite(xy) if isinstance(xy, torch.Tensor) else np.isfinite(xy)
    x, y = xy[..., 0], xy[..., 1]
    return (finite.all(-1) & (x >= -0.5) & (x < image_hw[1] - 0.5)
            & (y >= -0.5) & (y < image_hw[0] - 0.5))


def containing_tokens(xy: np.ndarray, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> np.ndarray:
    """[P, 2] pixel points inside the image -> [P] int row-major index of the token containing each,
    floor((x + 0.5) * w / W) per axis (clipped to the grid against rounding at the far edge)."""
    h, w = grid_hw
    cols_rows = np.floor((xy + 0.5) * np.array([w / image_hw[1], h / image_hw[0]])).astype(int)  # float64 scale
    q = np.clip(cols_rows, 0, [w - 1, h - 1])
    return q[..., 1] * w + q[..., 0]
