"""Weights shipped with the package (package data, no download).

- ``tiny-synth/``: the tiny model (autoencoder, prior, InstantRestore stage) trained on synthetic identities by
  ``instantrestore bench synth --train`` (config.json + adapters/base safetensors), with the
  training configs, timings and the benchmark numbers it gives.
- ``idnet-eval/``: the *evaluation* identity network of that run (config.json +
  model.safetensors; never the network the generator was trained against).

See README.md in this folder for how the assets were made and how to replace them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..generator.model import InstantRestore

ASSETS_DIR = Path(__file__).resolve().parent
MODEL_NAME = "tiny-synth"
EVAL_NETWORK_NAME = "idnet-eval"
HOW_TO_GET = ("Train them with `instantrestore bench synth --train --out runs/synth --ship-to {assets}` "
              "(about an hour on a 2-core CPU), or pass your own weights with --checkpoint DIR --eval-network DIR")


class ShippedAssetsMissing(FileNotFoundError):
    """The shipped checkpoint or evaluation network is not in this installation."""


def _require(folder: Path, files: tuple[str, ...], what: str) -> Path:
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise ShippedAssetsMissing(
            f"the shipped {what} is not installed: {folder} lacks {', '.join(missing)}. "
            + HOW_TO_GET.format(assets=ASSETS_DIR))
    return folder


def shipped_model_path(assets_dir: str | Path | None = None) -> Path:
    """Folder of the shipped tiny model; raises :class:`ShippedAssetsMissing` when absent."""
    root = ASSETS_DIR if assets_dir is None else Path(assets_dir)
    return _require(root / MODEL_NAME, ("config.json", "adapters.safetensors", "base.safetensors"),
                    "tiny synthetic-identities checkpoint")


def shipped_eval_network_path(assets_dir: str | Path | None = None) -> Path:
    """Folder of the shipped evaluation identity network; raises :class:`ShippedAssetsMissing` when absent."""
    root = ASSETS_DIR if assets_dir is None else Path(assets_dir)
    return _require(root / EVAL_NETWORK_NAME, ("config.json", "model.safetensors"), "evaluation identity network")


def shipped_assets_present(assets_dir: str | Path | None = None) -> bool:
    """True when both the model and the evaluation network are installed."""
    try:
        shipped_model_path(assets_dir)
        shipped_eval_network_path(assets_dir)
    except ShippedAssetsMissing:
        return False
    return True


def load_shipped_model(device: torch.device | str | None = None,
                       assets_dir: str | Path | None = None) -> InstantRestore:
    """The shipped :class:`~instantrestore.generator.model.InstantRestore` (tiny backbone, 128 px), in eval mode."""
    from ..generator.model import InstantRestore

    return InstantRestore.from_pretrained(shipped_model_path(assets_dir), device=device)


def load_shipped_eval_network(device: torch.device | str | None = None,
                              assets_dir: str | Path | None = None) -> nn.Module:
    """The shipped evaluation identity network ([B, 3, S, S] in [-1, 1] -> [B, D] unit length), frozen."""
    folder = shipped_eval_network_path(assets_dir)
    from ..idnet import load_identity_network

    network = load_identity_network(folder)
    return network.to(device) if device is not None else network
