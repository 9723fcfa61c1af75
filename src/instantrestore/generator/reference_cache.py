"""ReferenceCache: the per-layer keys/values of one reference set, reusable across photos.

An album's references are encoded once (one pass of the frozen reference branch) and
every photo of that person reuses them. Reuse is safe only with a model of the same reference
key (:func:`~.fingerprints.reference_key`: the reference branch's weights and every setting that
changes its keys/values), which the cache records when it is encoded and the model checks.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import load_file, save_file

from ..utils.files import atomic_path
from ..utils.tensor_io import CHECKSUM_KEY, ChecksumMismatchError, check_checksum, tensors_checksum

CACHE_FORMAT = "instantrestore.reference_cache/1"


@dataclass
class ReferenceCache:
    """keys/values: layer name -> tensor [N, L, C]; latent_hw: the references' UNet input size.
    model_key / settings: the reference key of the model that encoded them and what it hashes
    (empty in a file written before caches recorded it: such a cache fits no model)."""

    keys: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]
    backbone: str
    weights_fingerprint: str
    timestep: int
    latent_hw: tuple[int, int]
    image_hw: tuple[int, int]
    model_key: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return next(iter(self.keys.values())).shape[0] if self.keys else 0

    @property
    def layers(self) -> list[str]:
        """The injected layers' names, in the order of ``keys``."""
        return list(self.keys)

    def metadata(self) -> dict[str, str]:
        """What :meth:`save` writes beside the tensors (strings, as safetensors metadata)."""
        return {
            "format": CACHE_FORMAT,
            "backbone": self.backbone,
            "weights_fingerprint": self.weights_fingerprint,
            "timestep": str(self.timestep),
            "latent_hw": json.dumps(list(self.latent_hw)),
            "image_hw": json.dumps(list(self.image_hw)),
            "layers": json.dumps(self.layers),
            "model_key": self.model_key,
            "settings": json.dumps(self.settings, sort_keys=True, default=str),
        }

    def check_key(self, key: str, settings: dict[str, Any]) -> None:
        """Refuse a model whose reference key is not ``key``'s (``settings``: what it hashes, to name
        the differences). Raises ValueError saying to encode the references again."""
        if self.model_key == key:
            return
        if not self.model_key:
            why = "the cache records no model key: it was written before caches recorded one"
        else:
            differ = [f"{name}: {self.settings.get(name)!r} in the cache, {value!r} here"
                      for name, value in settings.items() if _plain(self.settings.get(name)) != _plain(value)]
            why = "; ".join(differ) or f"key {self.model_key} in the cache, {key} here"
        raise ValueError(f"reference cache was encoded by another model or settings ({why}); "
                         "encode the references again with this model")

    def as_batch(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Layer -> (keys, values) shaped [1, N, L, C], broadcast over any batch of photos."""
        return {name: (self.keys[name][None], self.values[name][None]) for name in self.keys}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "ReferenceCache":
        """The same cache with its keys/values on ``device`` / in ``dtype`` (its key unchanged)."""
        move = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return replace(self, keys={k: move(v) for k, v in self.keys.items()},
                       values={k: move(v) for k, v in self.values.items()})

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
        return replace(self, keys={k: take(v) for k, v in self.keys.items()},
                       values={k: take(v) for k, v in self.values.items()})

    def save(self, path: str | os.PathLike) -> None:
        """Write keys/values and metadata to one safetensors file (atomically), with the checksum of
        the tensors that :meth:`load` checks."""
        tensors = {}
        for name in self.keys:
            tensors[f"{name}.key"] = self.keys[name].contiguous().cpu()
            tensors[f"{name}.value"] = self.values[name].contiguous().cpu()
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={**self.metadata(), CHECKSUM_KEY: tensors_checksum(tensors)})

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu",
             require_checksum: bool = False) -> "ReferenceCache":
        """Read a cache written by :meth:`save`; ValueError naming the file for one that is not a
        reference cache, is damaged, or whose keys/values differ from the checksum it records
        (``ChecksumMismatchError``). A cache saved before checksums were kept is read with a
        warning, or refused with ``require_checksum``."""
        path = Path(path)
        again = "encode the references again (restore --refs ... --save-cache FILE)"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such reference cache" + (" (it is a folder)" if path.is_dir() else ""))
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
            tensors = load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: not safetensors, or truncated
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{path}: not a readable reference cache ({first}): not a safetensors file, or "
                             f"truncated; {again}") from exc
        if meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"{path}: not an instantrestore reference cache (format {meta.get('format')!r})")
        try:
            checked = check_checksum(path, tensors, meta)
        except ChecksumMismatchError as exc:
            raise ChecksumMismatchError(f"{exc}; {again}", path) from None
        if not checked and require_checksum:
            raise ValueError(f"{path}: records no checksum (saved by an older version); {again}")
        if not checked:
            warnings.warn(f"{path}: records no checksum (saved by an older version), so an altered file would go "
                          "unnoticed; save it again with --save-cache", UserWarning, stacklevel=2)
        try:
            layers = json.loads(meta["layers"])
            cache = cls(
                keys={name: tensors[f"{name}.key"] for name in layers},
                values={name: tensors[f"{name}.value"] for name in layers},
                backbone=meta["backbone"],
                weights_fingerprint=meta["weights_fingerprint"],
                timestep=int(meta["timestep"]),
                latent_hw=tuple(json.loads(meta["latent_hw"])),
                image_hw=tuple(json.loads(meta["image_hw"])),
                model_key=meta.get("model_key", ""),
                settings=json.loads(meta.get("settings", "{}")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: an incomplete reference cache ({type(exc).__name__}: {exc}); {again}") from exc
        return cache if torch.device(device).type == "cpu" else cache.to(device)


def _plain(value: Any) -> Any:
    """A setting as it reads back from JSON (tuples as lists), so that comparing shows real differences."""
    return json.loads(json.dumps(value, default=str))
