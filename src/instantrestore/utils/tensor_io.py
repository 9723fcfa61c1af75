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


PICKLE_WHY = ("a pickle can run arbitrary code on your machine when it is loaded, so pickles are refused by default")


def _pickle_sibling(path: Path) -> Path | None:
    """``adapters.pt`` (etc.) next to a missing ``adapters.safetensors``, if there is one."""
    for suffix in PICKLE_SUFFIXES:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def load_tensors(path: str | os.PathLike, trust_pickle: bool = False, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a flat tensor dict from safetensors, or from a pickle only when ``trust_pickle``.

    A missing ``NAME.safetensors`` falls back to ``NAME.pt`` / ``.bin`` / ... beside it (with
    ``trust_pickle`` only). Every failure is a ValueError / FileNotFoundError naming the file.
    """
    path = Path(path)
    if not path.is_file() and path.suffix == ".safetensors" and (sibling := _pickle_sibling(path)) is not None:
        path = sibling
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device=device)
        except Exception as exc:  # SafetensorError, OSError, ...: corrupted or truncated
            raise ValueError(f"{path}: not a readable safetensors file ({exc}); it is probably truncated or "
                             "corrupted: copy or download it again, or re-save the checkpoint") from exc
    if path.suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise UntrustedPickleError(
                f"{path} is a pickle file: {PICKLE_WHY}. Convert it to safetensors, or pass trust_pickle=True "
                "(CLI: --trust-pickle) if you trust its source")
        try:
            state = torch.load(str(path), map_location=device, weights_only=True)
        except Exception as exc:  # corrupted, or holds objects other than tensors
            raise ValueError(f"{path}: cannot be read as a tensor file with torch.load(weights_only=True) "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    raise ValueError(f"{path}: unknown checkpoint type {path.suffix!r} (expected .safetensors)")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file (header only, no tensor is read); empty for a
    missing file, a pickle, or a file without metadata."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception:  # noqa: BLE001 - a damaged file fails loudly in load_tensors, not here
        return {}


def save_tensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write tensors to safetensors atomically (contiguous CPU copies)."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def write_config(directory: str | os.PathLike, config_json: str) -> None:
    """Write ``directory/config.json``: the model config (JSON text) under this format's tag, atomically."""
    data = json.loads(config_json)
    atomic_write_text(Path(directory) / CONFIG_NAME, json.dumps({"format": CHECKPOINT_FORMAT, "model": data}, indent=2))


def read_config(directory: str | os.PathLike) -> dict | None:
    """The model config dict of an instantrestore checkpoint directory, or None if it is not one.

    Raises ValueError naming the file when config.json exists but is not valid JSON of this format."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: broken JSON ({exc}); restore the file from the checkpoint's source") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        return None
    if not isinstance(data.get("model"), dict):
        raise ValueError(f"{path}: format {CHECKPOINT_FORMAT} but no 'model' object; the file is incomplete")
    return data["model"]


CHECKSUM_KEY = "tensors_sha256"  # safetensors metadata: the checksum of the file's tensors (``tensors_checksum``)


class ChecksumMismatchError(ValueError):
    """A file's tensors differ from the checksum recorded when it was written: altered or damaged.
    ``path``: the file."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.path = path


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 (hex) of named tensors: every name, dtype, shape and byte, in name order."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def check_checksum(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bool:
    """True when ``metadata`` records the checksum of ``tensors``, False when it records none (a file
    written before checksums were kept); ChecksumMismatchError naming ``path`` when they differ."""
    recorded = metadata.get(CHECKSUM_KEY)
    if not recorded:
        return False
    if tensors_checksum(tensors) != recorded:
        raise ChecksumMismatchError(f"{path}: its contents differ from the checksum recorded when it was written "
                                    "(the file was altered or damaged)", path)
    return True
