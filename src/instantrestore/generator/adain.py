"""AdaIN for attention values (paper eq. 5): give each reference's values the per-channel
statistics of the degraded image's own values, so lighting and colour of the references
do not leak into the restoration."""
from __future__ import annotations

import torch


def channel_stats(x: torch.Tensor, eps: float = 1e-5, std_form: str = "biased") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over the token axis.

    x: [..., L, C] -> (mean, std), each [..., 1, C]. std_form "biased": sqrt(biased var + eps);
    "unbiased": torch.std (N - 1) + eps, as the authors' code computes it.
    """
    mean = x.mean(dim=-2, keepdim=True)
    if std_form == "unbiased":
        return mean, x.std(dim=-2, keepdim=True, unbiased=True) + eps
    if std_form != "biased":
        raise ValueError(f"std_form must be 'biased' or 'unbiased', got {std_form!r}")
    std = (x.var(dim=-2, keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def adain(x: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor, eps: float = 1e-5,
          std_form: str = "biased") -> torch.Tensor:
    """Normalise ``x`` ([..., L, C]) per channel over tokens, then scale/shift to the target stats.

    target_mean/target_std broadcast against [..., 1, C]. adain(x, *channel_stats(x)) == x.
    """
    mean, std = channel_stats(x, eps, std_form)
    return (x - mean) / std * target_std + target_mean
