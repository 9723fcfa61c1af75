"""Checkpoint files: safetensors tensors plus a JSON config. Pickles are refused by default.

A pickle (.bin/.pt/.ckpt/.pth) can run arbitrary code when loaded, so it is only read when
the caller passes ``trust_pickle=True`` for a file they trust.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .files import atomic_path, atomic_write_text

CHECKPOINT_FORMAT = "instantrestore/1"
CONFIG_NAME = "config.json"
ADAPTERS_NAME = "adapters.safetensors"
BASE_NAME = "base.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class UntrustedPickleError(ValueError):
    """Raised instead of unpickling a file the caller has not declared trusted."""


def load_tensors(path: str | os.PathLike, trust_pickle: bool = False, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a flat tensor dict from safetensors, or from a pickle only when ``trust_pickle``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return load_file(str(path), device=device)
    if path.suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise UntrustedPickleError(
                f"{path} is a pickle file, which can execute code when loaded; convert it to safetensors, "
                "or pass trust_pickle=True (CLI: --trust-pickle) if you trust its source")
        state = torch.load(str(path), map_location=device, weights_only=True)
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    raise ValueError(f"{path}: unknown checkpoint type {path.suffix!r} (expected .safetensors)")


def save_tensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write tensors to safetensors atomically (contiguous CPU copies)."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def write_config(directory: str | os.PathLike, config_json: str) -> None:
    data = json.loads(config_json)
    atomic_write_text(Path(directory) / CONFIG_NAME, json.dumps({"format": CHECKPOINT_FORMAT, "model": data}, indent=2))


def read_config(directory: str | os.PathLike) -> dict | None:
    """The model config dict of an instantrestore checkpoint directory, or None if it is not one."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("format") != CHECKPOINT_FORMAT:
        return None
    return data["model"]
