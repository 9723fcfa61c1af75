"""Landmark distances: plain L2 (L2-LD) and the affine landmark distance A-LD (HonestFace).

Landmarks are (N, 2) or (B, N, 2) arrays of (x, y) pixels in the evaluated images' frame.
A-LD (HonestFace, eq. 14-15) is the weighted sum of squared residuals left after the best
2-D affine map from predicted to ground-truth landmarks (weighted least squares):

    d(L, H; W) = min_A sum_k w_k ||A [l_k; 1] - h_k||^2,   A = (H W L'^T)(L' W L'^T)^-1

so it ignores any global translation, rotation, scale or shear between the two faces,
while L2-LD (mean Euclidean distance per landmark) does not. Seed 004 reports it on the
eye region (eyes and eyebrows: ``ALD_EYE``) and the mouth border (``ALD_MOUTH``).

Plain geometry, no model: reference selection (``faces.select``) and the evaluation metrics
(``metrics``, which re-exports it) both use it, so ``faces`` never imports ``metrics``.
"""
from __future__ import annotations

import numpy as np

# 68-point index sets (iBUG 300-W layout, as dlib's predictor outputs them).
JAW = list(range(0, 17))
BROWS = list(range(17, 27))
NOSE = list(range(27, 36))
EYES = list(range(36, 48))
MOUTH_OUTER = list(range(48, 60))
MOUTH_INNER = list(range(60, 68))

ALD_EYE = BROWS + EYES  # 22 points of the 68-point layout
ALD_MOUTH = MOUTH_OUTER  # 12 points


def _batch(points) -> np.ndarray:
    a = np.asarray(points, dtype=np.float64)
    a = a[None] if a.ndim == 2 else a
    if a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(f"expected landmarks (N, 2) or (B, N, 2), got {np.shape(points)}")
    return a


def l2_landmark_distance(pred, gt) -> np.ndarray:
    """Mean Euclidean distance per landmark, in pixels -> [B]."""
    p, g = _batch(pred), _batch(gt)
    if p.shape != g.shape:
        raise ValueError(f"landmark shapes differ: {p.shape} vs {g.shape}")
    return np.linalg.norm(p - g, axis=-1).mean(-1)


def affine_landmark_distance(pred, gt, weights=None, return_affine: bool = False):
    """A-LD of HonestFace eq. 14 -> [B] (and the fitted [B, 2, 3] maps when ``return_affine``).

    Needs N >= 3 non-collinear predicted landmarks; ``weights`` (N,) are positive, default 1.
    """
    p, g = _batch(pred), _batch(gt)
    if p.shape != g.shape:
        raise ValueError(f"landmark shapes differ: {p.shape} vs {g.shape}")
    n = p.shape[1]
    if n < 3:
        raise ValueError(f"A-LD needs at least 3 landmarks, got {n}")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or np.any(w <= 0):
        raise ValueError(f"weights must be {n} positive numbers, got shape {w.shape}")
    lh = np.concatenate([p, np.ones(p.shape[:2] + (1,))], axis=-1)  # [B, N, 3] homogeneous
    sw = np.sqrt(w)[None, :, None]
    distances, maps = [], []
    for lb, gb in zip(lh * sw, g * sw):
        if np.linalg.matrix_rank(lb) < 3:
            raise ValueError("A-LD needs non-collinear landmarks (the affine fit is not unique)")
        at, *_ = np.linalg.lstsq(lb, gb, rcond=None)  # [3, 2] == A^T, eq. 15
        distances.append(float(((lb @ at - gb) ** 2).sum()))
        maps.append(at.T)
    d = np.array(distances)
    return (d, np.stack(maps)) if return_affine else d


def ald_eye(pred68, gt68) -> np.ndarray:
    """A-LD on eyes and eyebrows (``ALD_EYE``) of 68-point landmarks -> [B]."""
    return affine_landmark_distance(_batch(pred68)[:, ALD_EYE], _batch(gt68)[:, ALD_EYE])


def ald_mouth(pred68, gt68) -> np.ndarray:
    """A-LD on the outer mouth border (``ALD_MOUTH``) of 68-point landmarks -> [B]."""
    return affine_landmark_distance(_batch(pred68)[:, ALD_MOUTH], _batch(gt68)[:, ALD_MOUTH])
