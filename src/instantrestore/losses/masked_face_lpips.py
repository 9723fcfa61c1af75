"""Masked face alignment (MFA, HonestFace eq. 10-13): a perceptual loss on landmark-masked images.

    M_raw = avg_channel(heatmaps)                                                  (10)
    M     = minmax(1 - exp(-k * M_raw)), i.e. (v - min v) / (max v - min v + eps)  (11)
    x_MFA = M * x_H + (1 - M) * B,   x^_MFA = M * x^_H + (1 - M) * B                (12)
    L_MFA = LPIPS(x_MFA, x^_MFA)                                                   (13)

HonestFace runs a heatmap detector on the degraded input. Training batches already carry the
target's landmarks, so the heatmaps here are rendered from them: one Gaussian (peak 1, std
``sigma`` x image side) per finite landmark, averaged over the finite landmarks - a perfect
detector's heatmaps. B is neutral grey (0 in [-1, 1]); k = 10 as in HonestFace.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FaceAlignmentConfig:
    """sigma: heatmap std as a fraction of the image side; sharpness: k of eq. 11; background: B;
    distance: "lpips" (the paper's; needs the LPIPS module) or "l1" (fallback without LPIPS)."""

    sigma: float = 0.02
    sharpness: float = 10.0
    background: float = 0.0
    eps: float = 1e-6
    distance: str = "lpips"


def landmark_heatmap_mask(landmarks: torch.Tensor, image_hw: tuple[int, int], sigma: float = 0.02,
                          sharpness: float = 10.0, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 10-11 from landmarks [B, P, 2] (pixel x, y; NaN = missing) -> mask [B, 1, H, W] in [0, 1].

    A sample without any finite landmark gets an all-zero mask (it then adds nothing)."""
    h, w = image_hw
    pts = landmarks.float()
    valid = torch.isfinite(pts).all(dim=-1)                                        # [B, P]
    pts = torch.nan_to_num(pts)
    std = sigma * max(h, w)
    ys = torch.arange(h, device=pts.device, dtype=torch.float32)
    xs = torch.arange(w, device=pts.device, dtype=torch.float32)
    # Separable Gaussians: [B, P, H] x [B, P, W] -> averaged over valid points [B, H, W].
    gy = torch.exp(-((ys[None, None] - pts[..., 1:2]) ** 2) / (2 * std**2)) * valid[..., None]
    gx = torch.exp(-((xs[None, None] - pts[..., 0:1]) ** 2) / (2 * std**2))
    raw = torch.einsum("bph,bpw->bhw", gy, gx) / valid.sum(dim=1).clamp(min=1)[:, None, None]
    sharp = 1.0 - torch.exp(-sharpness * raw)
    low = sharp.flatten(1).min(dim=1).values[:, None, None]
    high = sharp.flatten(1).max(dim=1).values[:, None, None]
    return ((sharp - low) / (high - low + eps))[:, None]


class MaskedFaceAlignmentLoss(nn.Module):
    """L_MFA (eq. 13) with the perceptual ``distance`` (e.g. :class:`LPIPSLoss`), or L1 when None."""

    def __init__(self, config: FaceAlignmentConfig = FaceAlignmentConfig(), distance: Distance | None = None):
        super().__init__()
        self.config = config
        # Registered as a submodule when it is one, so .to(device) moves it.
        self.distance = distance

    def forward(self, restored: torch.Tensor, target: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """restored, target: [B, 3, H, W] in [-1, 1]; landmarks [B, P, 2] of the target -> scalar."""
        c = self.config
        mask = landmark_heatmap_mask(landmarks.to(restored.device), tuple(restored.shape[-2:]), c.sigma,
                                     c.sharpness, c.eps).to(restored.dtype)
        # eq. 12: the mask comes from landmarks only, so no gradient passes through it.
        masked_target = mask * target + (1 - mask) * c.background
        masked_restored = mask * restored + (1 - mask) * c.background
        if self.distance is None:
            return F.l1_loss(masked_restored.float(), masked_target.float())
        return self.distance(masked_restored, masked_target)
