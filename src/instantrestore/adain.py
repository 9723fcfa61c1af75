"""AdaIN for attention values (paper eq. 5): give each reference's values the per-channel
statistics of the degraded image's own values, so lighting and colour of the references
do not leak into the restoration."""
from __future__ import annotations

import torch


def channel_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over the token axis.

    x: [..., L, C] -> (mean, std), each [..., 1, C]; std = sqrt(biased var + eps).
    """
    mean = x.mean(dim=-2, keepdim=True)
    std = (x.var(dim=-2, keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def adain(x: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise ``x`` ([..., L, C]) per channel over tokens, then scale/shift to the target stats.

    target_mean/target_std broadcast against [..., 1, C]. adain(x, *channel_stats(x)) == x.
    """
    mean, std = channel_stats(x, eps)
    return (x - mean) / std * target_std + target_mean
