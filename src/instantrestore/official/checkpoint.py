"""Read the two file formats the authors' code writes, safely and lazily.

1. The training checkpoint (``torch.save`` in their coach): ``{"state_dict": <the whole model,
   keys "net." or "net.module.">, "cfg": <their TrainConfig as plain dicts>, "optimizer": ...}``.
   It holds the generator's UNet (LoRA adapter "default", conv_in trained in full) and VAE (LoRA
   adapter "vae_skip"), the frozen reference UNet and VAE, and the text encoder, in bfloat16
   when trained with mixed precision.
2. ``save_model``'s adapter file: ``rank_unet``, ``rank_vae``, ``unet_lora_target_modules``,
   ``vae_lora_target_modules``, ``state_dict_unet`` (LoRA + the full conv_in), ``state_dict_vae``
   (LoRA); the base weights come from the hub.

Both are pickles. They are opened with ``torch.load(weights_only=True)`` only, which builds
tensors and plain containers and refuses anything that would run code; and memory-mapped, so a
several-GB file is not read into memory twice.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

TRAINING, ADAPTER_FILE = "training-checkpoint", "adapter-file"
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class OfficialCheckpointError(ValueError):
    """A file that is not a usable official checkpoint; the message names the file and the fix."""


@dataclass
class OfficialCheckpoint:
    """One official file, read. ``state``: key -> tensor (prefixes "net."/"module." removed for the
    training checkpoint; "unet."/"vae." added for the adapter file); ``cfg``: their config dict."""

    path: Path
    kind: str
    state: dict[str, torch.Tensor]
    cfg: dict[str, Any] = field(default_factory=dict)
    lora_targets: dict[str, list[str] | None] = field(default_factory=dict)

    @property
    def dtype(self) -> torch.dtype:
        """The storage dtype of the weights (bfloat16 for a mixed-precision training run)."""
        dtypes = {t.dtype for t in self.state.values() if t.is_floating_point()}
        return dtypes.pop() if len(dtypes) == 1 else torch.float32

    def model_cfg(self, key: str, default: Any = None) -> Any:
        """One entry of their config's ``model`` section, or ``default``."""
        model = self.cfg.get("model") if isinstance(self.cfg, dict) else None
        return model.get(key, default) if isinstance(model, dict) else default


def _load(path: Path) -> Any:
    try:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # a legacy (non-zip) torch.save file cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise OfficialCheckpointError(
            f"{path}: refused - loading it would run code from the file, not just read tensors ({exc}). "
            "The authors' checkpoints hold only tensors and plain values; this file is not one of them or "
            "was modified. Get it again from its source (hwdz15508/InstantRestore).") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise OfficialCheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint ({exc.__class__.__name__}: {str(exc)[:200]}); "
            "the file is probably truncated or corrupted - download it again") from exc


def _strip_prefixes(key: str) -> str:
    for prefix in ("module.", "net.", "module."):  # DDP-wrapped runs save "net.module."
        key = key.removeprefix(prefix)
    return key


def read_official(path: str | os.PathLike) -> OfficialCheckpoint:
    """Open an official training checkpoint or ``save_model`` adapter file (bf16, fp16 or fp32)."""
    path = Path(path)
    if not path.is_file():
        raise OfficialCheckpointError(f"{path}: no such file")
    data = _load(path)
    if not isinstance(data, dict):
        raise OfficialCheckpointError(f"{path}: expected a dict of the authors' format, got {type(data).__name__}")
    if "state_dict" in data:
        state = {_strip_prefixes(k): v for k, v in data["state_dict"].items() if isinstance(v, torch.Tensor)}
        cfg = data.get("cfg") if isinstance(data.get("cfg"), dict) else {}
        checkpoint = OfficialCheckpoint(path, TRAINING, state, cfg)
    elif "state_dict_unet" in data:
        state = {f"unet.{k}": v for k, v in data["state_dict_unet"].items()}
        state.update({f"vae.{k}": v for k, v in (data.get("state_dict_vae") or {}).items()})
        cfg = {"model": {"lora_rank_unet": data.get("rank_unet"), "lora_rank_vae": data.get("rank_vae")}}
        targets = {"unet": data.get("unet_lora_target_modules"), "vae": data.get("vae_lora_target_modules")}
        checkpoint = OfficialCheckpoint(path, ADAPTER_FILE, state, cfg, targets)
    else:
        raise OfficialCheckpointError(f"{path}: not an InstantRestore checkpoint (keys {sorted(data)[:6]}; expected "
                                      "'state_dict' + 'cfg' or save_model's 'state_dict_unet')")
    odd = sorted({str(t.dtype) for t in checkpoint.state.values()
                  if t.is_floating_point() and t.dtype not in FLOAT_DTYPES})
    if odd:
        raise OfficialCheckpointError(f"{path}: unsupported tensor dtypes {odd} (expected bf16, fp16 or fp32)")
    if not checkpoint.state:
        raise OfficialCheckpointError(f"{path}: holds no tensors")
    return checkpoint
