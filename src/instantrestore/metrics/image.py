"""Full-reference image metrics: PSNR, SSIM, MS-SSIM and LPIPS, one value per image.

Inputs: float tensors [B, 3, H, W] RGB in [-1, 1], or uint8 arrays (H, W, 3) / (B, H, W, 3).
Convention: pixels are mapped to [0, 255] (no rounding of float inputs) and the data range
is 255. PSNR and SSIM use all three RGB channels by default (SSIM is the mean of the
per-channel SSIMs), exactly scikit-image's ``peak_signal_noise_ratio`` and
``structural_similarity(channel_axis=-1, data_range=255)`` (7x7 uniform window, sample
covariance, K1=0.01, K2=0.03, borders of 3 px excluded). ``y_channel=True`` measures the
BT.601 luma Y in [16, 235] instead (``skimage.color.rgb2ycbcr``), as BasicSR-style tables do.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.lpips_net import LPIPSUnavailable, load_lpips

Images = torch.Tensor | np.ndarray  # the layouts of the module docstring


class MetricUnavailable(RuntimeError):
    """A metric that cannot run here (missing package or weights); the message says how to provide it."""


def to_pixels(images: Images) -> torch.Tensor:
    """Tensor [-1, 1] [B, 3, H, W] or uint8 array (H, W, 3)/(B, H, W, 3) -> float64 [B, 3, H, W] in [0, 255]."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ValueError(f"numpy inputs must be uint8 (H, W, 3) or (B, H, W, 3), got {images.dtype}")
        array = images[None] if images.ndim == 3 else images
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"expected (H, W, 3) or (B, H, W, 3), got {images.shape}")
        return torch.from_numpy(np.array(array)).permute(0, 3, 1, 2).double()
    if isinstance(images, torch.Tensor):
        x = images[None] if images.ndim == 3 else images
        if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise ValueError(f"expected a float tensor [B, 3, H, W] in [-1, 1], got {x.dtype} {tuple(x.shape)}")
        return (x.detach().double().cpu().clamp(-1, 1) + 1) * 127.5
    raise TypeError(f"expected a torch.Tensor or numpy array, got {type(images).__name__}")


def _pair(pred: Images, gt: Images) -> tuple[torch.Tensor, torch.Tensor]:
    p, g = to_pixels(pred), to_pixels(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {tuple(p.shape)} and ground truth {tuple(g.shape)} differ in shape")
    return p, g


def rgb_to_y(pixels: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 255] -> [B, 1, H, W] BT.601 luma in [16, 235]."""
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=pixels.dtype).view(1, 3, 1, 1)
    return 16.0 + (pixels * weights).sum(1, keepdim=True) / 255.0


def psnr(pred: Images, gt: Images, y_channel: bool = False) -> torch.Tensor:
    """PSNR in dB per image -> [B] float64 (inf for identical images); data range 255."""
    p, g = _pair(pred, gt)
    if y_channel:
        p, g = rgb_to_y(p), rgb_to_y(g)
    mse = ((p - g) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(255.0 ** 2 / mse)


def ssim(pred: Images, gt: Images, y_channel: bool = False, win_size: int = 7) -> torch.Tensor:
    """SSIM per image -> [B] float64, scikit-image's definition (see the module docstring)."""
    p, g = _pair(pred, gt)
    if y_channel:
        p, g = rgb_to_y(p), rgb_to_y(g)
    if min(p.shape[-2:]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, got {tuple(p.shape[-2:])}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    cov_norm = win_size ** 2 / (win_size ** 2 - 1)

    def mean(x):  # valid-window mean == skimage's uniform_filter then cropping (win_size-1)/2
        return F.avg_pool2d(x, win_size, stride=1)

    ux, uy = mean(p), mean(g)
    vx = cov_norm * (mean(p * p) - ux * ux)
    vy = cov_norm * (mean(g * g) - uy * uy)
    vxy = cov_norm * (mean(p * g) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(1)


def ms_ssim(pred: Images, gt: Images) -> torch.Tensor:
    """MS-SSIM per image (pytorch-msssim, 11x11 Gaussian, sigma 1.5, 5 scales, RGB) -> [B]; sides must exceed 160 px."""
    try:
        from pytorch_msssim import ms_ssim as _ms_ssim
    except ImportError as exc:
        raise MetricUnavailable("MS-SSIM needs pytorch-msssim: pip install pytorch-msssim") from exc
    p, g = _pair(pred, gt)
    if min(p.shape[-2:]) <= 160:
        raise ValueError(f"MS-SSIM needs images larger than 160 px per side, got {tuple(p.shape[-2:])}")
    return _ms_ssim(p.float(), g.float(), data_range=255, size_average=False).double()


class LPIPS:
    """LPIPS distance (the ``lpips`` package) per image -> [B]; lower is more similar.

    Never downloads (see :func:`instantrestore.utils.lpips_net.load_lpips`): a missing package or
    backbone file raises ``MetricUnavailable`` saying what to install or copy where.
    """

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu"):
        try:
            model = load_lpips(net)
        except LPIPSUnavailable as exc:
            raise MetricUnavailable(str(exc)) from exc
        self.device = torch.device(device)
        self.model = model.to(self.device)

    @torch.no_grad()
    def __call__(self, pred: Images, gt: Images) -> torch.Tensor:
        p, g = _pair(pred, gt)
        p, g = (p / 127.5 - 1).float().to(self.device), (g / 127.5 - 1).float().to(self.device)
        return self.model(p, g).flatten().double().cpu()
