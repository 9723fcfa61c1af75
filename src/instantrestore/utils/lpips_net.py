"""The LPIPS network (the ``lpips`` package), loaded without any download.

Shared by the LPIPS loss (``losses.reconstruction``) and the LPIPS metric (``metrics.image``).
lpips would download its torchvision backbone on first use; here the backbone weights must
already be in ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``), and a
missing package or file raises :class:`LPIPSUnavailable` saying how to provide it.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

# torchvision file names of the LPIPS backbones (looked up in ``torch.hub.get_dir()/checkpoints``).
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


class LPIPSUnavailable(RuntimeError):
    """The lpips package or its backbone weights are missing here; the message says how to provide them."""


def load_lpips(net: str) -> nn.Module:
    """The frozen lpips network (eval mode, no parameter requires grad) for backbone ``net``.

    Its forward maps two [B, 3, H, W] RGB tensors in [-1, 1] to distances [B, 1, 1, 1].
    Raises ValueError for an unknown ``net`` and LPIPSUnavailable (before anything could be
    downloaded) when the package cannot be imported or the backbone weights are missing.
    """
    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_BACKBONE_FILES)}, not {net!r}")
    try:
        import lpips
    except Exception as exc:  # a torchvision not matching torch fails with non-ImportErrors too
        raise LPIPSUnavailable(
            f"the lpips package cannot be imported ({type(exc).__name__}: {exc}); install it with "
            "`pip install lpips` and a torchvision matching this torch") from exc
    weights = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]
    if not weights.is_file():
        raise LPIPSUnavailable(
            f"the torchvision {net} weights for LPIPS are missing at {weights}; copy {LPIPS_BACKBONE_FILES[net]} "
            "there (or point TORCH_HOME at a folder holding hub/checkpoints/)")
    return lpips.LPIPS(net=net, verbose=False).eval().requires_grad_(False)
