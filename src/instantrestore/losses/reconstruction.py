"""Reconstruction losses of paper eq. 1: LPIPS and MS-SSIM (plus optional L1 / L2).

All take the restored image and the target as float tensors [B, 3, H, W] RGB in [-1, 1]
and return a scalar averaged over the batch; identical images give 0.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils.lpips_net import LPIPSUnavailable, load_lpips

# Wang et al.'s MS-SSIM scale weights (finest first) and pytorch-msssim's default window.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_WINDOW = 11


class LossUnavailable(RuntimeError):
    """A loss whose package or weights are missing here; the message says how to provide it."""


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
        raise ValueError(f"expected two [B, 3, H, W] images of the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")


class LPIPSLoss(nn.Module):
    """LPIPS (eq. 1, weight 5 in the paper): the ``lpips`` package's differentiable distance.

    The lpips network is frozen (its parameters never train); gradients flow to the images.
    The network comes from :func:`instantrestore.utils.lpips_net.load_lpips` (no download); a missing
    package or backbone file raises :class:`LossUnavailable` saying how to provide it or to set
    the lpips weight to 0.
    """

    def __init__(self, net: str = "vgg"):
        super().__init__()
        try:
            self.net = load_lpips(net)
        except LPIPSUnavailable as exc:
            raise LossUnavailable(f"the LPIPS loss cannot be built: {exc}; or train without it: "
                                  "LossWeights(lpips=0.0)") from exc
        self.net_name = net

    def train(self, mode: bool = True) -> "LPIPSLoss":
        super().train(mode)
        self.net.eval()  # frozen: dropout in lpips' linear heads stays off
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: [B, 3, H, W] in [-1, 1] -> scalar mean LPIPS distance."""
        _check_pair(pred, target)
        return self.net(pred.float(), target.float(), normalize=False).mean()


def ms_ssim_settings(side: int) -> tuple[int, tuple[float, ...]]:
    """(window size, scale weights) for MS-SSIM on images whose smaller side is ``side`` px.

    The standard setting (11-tap Gaussian, sigma 1.5, 5 scales) needs sides above 160 px:
    pytorch-msssim always downsamples 4 times and the coarsest scale must still hold a window.
    Smaller images keep the 5 scales and their weights and shrink the window to the largest
    odd size that fits (128 px -> 7, 64 px -> 3); sigma stays 1.5 so the statistics are a
    truncated version of the standard ones. Sides of 32 px or less raise ValueError.
    """
    window = MS_SSIM_WINDOW
    while window >= 3 and side <= (window - 1) * 16:
        window -= 2
    if window < 3:
        raise ValueError(f"MS-SSIM needs images larger than 32 px per side, got {side}")
    return window, MS_SSIM_WEIGHTS


class MSSSIMLoss(nn.Module):
    """1 - MS-SSIM (eq. 1, weight 1 in the paper) via pytorch-msssim, on images mapped to [0, 1].

    The window adapts to small images, see :func:`ms_ssim_settings`.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: [B, 3, H, W] in [-1, 1] -> scalar mean of 1 - MS-SSIM, in [0, 1]."""
        from pytorch_msssim import ms_ssim

        _check_pair(pred, target)
        window, weights = ms_ssim_settings(min(pred.shape[-2:]))
        x = (pred.float().clamp(-1, 1) + 1) / 2
        y = (target.float().clamp(-1, 1) + 1) / 2
        score = ms_ssim(x, y, data_range=1.0, size_average=True, win_size=window, weights=list(weights))
        return 1.0 - score


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of [B, 3, H, W] images in [-1, 1] -> scalar."""
    _check_pair(pred, target)
    return F.l1_loss(pred.float(), target.float())


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of [B, 3, H, W] images in [-1, 1] -> scalar."""
    _check_pair(pred, target)
    return F.mse_loss(pred.float(), target.float())
