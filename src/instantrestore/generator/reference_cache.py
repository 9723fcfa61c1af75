"""ReferenceCache: the per-layer keys/values of one reference set, reusable across photos.

An album's references are encoded once (one pass of the frozen reference branch) and
every photo of that person reuses them. The metadata says when reuse is safe: the same
backbone, the same reference-branch weights, timestep and token grid.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file

from ..utils.files import atomic_path

CACHE_FORMAT = "instantrestore.reference_cache/1"


@dataclass
class ReferenceCache:
    """keys/values: layer name -> tensor [N, L, C]; latent_hw: the references' UNet input size."""

    keys: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]
    backbone: str
    weights_fingerprint: str
    timestep: int
    latent_hw: tuple[int, int]
    image_hw: tuple[int, int]

    def __len__(self) -> int:
        return next(iter(self.keys.values())).shape[0] if self.keys else 0

    @property
    def layers(self) -> list[str]:
        return list(self.keys)

    def metadata(self) -> dict[str, str]:
        return {
            "format": CACHE_FORMAT,
            "backbone": self.backbone,
            "weights_fingerprint": self.weights_fingerprint,
            "timestep": str(self.timestep),
            "latent_hw": json.dumps(list(self.latent_hw)),
            "image_hw": json.dumps(list(self.image_hw)),
            "layers": json.dumps(self.layers),
        }

    def as_batch(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Layer -> (keys, values) shaped [1, N, L, C], broadcast over any batch of photos."""
        return {name: (self.keys[name][None], self.values[name][None]) for name in self.keys}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "ReferenceCache":
        move = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return ReferenceCache({k: move(v) for k, v in self.keys.items()}, {k: move(v) for k, v in self.values.items()},
                              self.backbone, self.weights_fingerprint, self.timestep, self.latent_hw, self.image_hw)

    def subset(self, indices: Sequence[int]) -> "ReferenceCache":
        """The cache of the references ``indices`` only, in that order (rows of keys/values).

        Each reference's keys/values come from its own pass, so in a noise-free profile this equals
        encoding those references alone: an album person is encoded once, each photo takes its best k.
        """
        index = [int(i) for i in indices]
        if not index:
            raise ValueError("subset: no reference indices given")
        n = len(self)
        if min(index) < -n or max(index) >= n:
            raise IndexError(f"subset: indices {index} out of range for {n} references")
        rows = torch.tensor([i % n for i in index], dtype=torch.long)
        take = lambda t: t.index_select(0, rows.to(t.device))  # noqa: E731
        return ReferenceCache({k: take(v) for k, v in self.keys.items()}, {k: take(v) for k, v in self.values.items()},
                              self.backbone, self.weights_fingerprint, self.timestep, self.latent_hw, self.image_hw)

    def save(self, path: str | os.PathLike) -> None:
        """Write keys/values and metadata to one safetensors file (atomically)."""
        tensors = {}
        for name in self.keys:
            tensors[f"{name}.key"] = self.keys[name].contiguous().cpu()
            tensors[f"{name}.value"] = self.values[name].contiguous().cpu()
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=self.metadata())

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "ReferenceCache":
        """Read a cache written by :meth:`save`; refuses files of another format."""
        path = Path(path)
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"{path}: not an instantrestore reference cache (format {meta.get('format')!r})")
        tensors = load_file(str(path), device=str(device))
        layers = json.loads(meta["layers"])
        return cls(
            keys={name: tensors[f"{name}.key"] for name in layers},
            values={name: tensors[f"{name}.value"] for name in layers},
            backbone=meta["backbone"],
            weights_fingerprint=meta["weights_fingerprint"],
            timestep=int(meta["timestep"]),
            latent_hw=tuple(json.loads(meta["latent_hw"])),
            image_hw=tuple(json.loads(meta["image_hw"])),
        )
