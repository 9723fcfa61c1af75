"""The album's two on-disk caches, in ``album/.instantrestore-cache/``:

- ``<person>-<faces key>.faces.safetensors``: the aligned reference crops [N, S, S, 3] uint8 RGB,
  their identity embeddings [N, D] and 68 landmarks [N, 68, 2];
- ``<person>-<faces key>-<reference key>.safetensors``: a :class:`ReferenceCache` of all N
  references, named by the model's reference key (:func:`~instantrestore.generator.fingerprints.reference_key`).

Each file records the checksum of its tensors (``utils.tensor_io.tensors_checksum``), checked on
every read: embeddings decide who a face matches and keys/values its pixels, so a file whose
contents were altered is rebuilt with an ``AlbumCacheWarning``, and one written before checksums
were kept is rebuilt too. A file whose key does not match is never read; a damaged file reads as
absent (it is rebuilt); a read-only album keeps everything in memory, with a warning.
"""
from __future__ import annotations

import glob
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..generator.reference_cache import ReferenceCache
from ..utils.files import atomic_path
from ..utils.tensor_io import CHECKSUM_KEY, ChecksumMismatchError, check_checksum, tensors_checksum
from .album_references import PersonReferences

CACHE_DIR = ".instantrestore-cache"
FACES_FORMAT = "instantrestore.album_faces/1"


class AlbumCacheWarning(UserWarning):
    """An album cache file was altered or damaged (its checksum does not match): it is rebuilt."""


_CACHE_NAME = re.compile(r"^(?P<key>[0-9a-f]{16})(\.faces|-[0-9a-f]{16})\.safetensors$")


def write_faces(path: Path, refs: PersonReferences, embedder_name: str) -> bool:
    """Write one person's prepared references; False (with a warning) when the folder is read-only."""
    from safetensors.torch import save_file

    meta = {"format": FACES_FORMAT, "person": refs.person, "key": refs.key, "names": json.dumps(refs.names),
            "skipped": json.dumps(refs.skipped), "notes": json.dumps(refs.notes), "embedder": embedder_name}
    tensors = {"crops": torch.from_numpy(np.ascontiguousarray(refs.crops)),
               "embeddings": refs.embeddings.contiguous(),
               "landmarks": torch.from_numpy(np.ascontiguousarray(refs.landmarks, dtype=np.float64))}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={**meta, CHECKSUM_KEY: tensors_checksum(tensors)})
    except OSError as exc:  # a read-only album still works, from memory
        warnings.warn(f"{path}: cannot write the album cache ({exc}); references are kept in memory only",
                      stacklevel=3)
        return False
    return True


def read_faces(path: Path, key: str) -> dict[str, Any] | None:
    """The prepared references stored under ``key`` (names, crops, embeddings, landmarks, skipped,
    notes), or None: no such file, another key, or a damaged file."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FACES_FORMAT or meta.get("key") != key:
                return None
            tensors = {name: handle.get_tensor(name) for name in ("crops", "embeddings", "landmarks")}
        if not check_checksum(path, tensors, meta):
            return None  # written before checksums were kept: prepared again
        return {"names": json.loads(meta["names"]), "crops": tensors["crops"].numpy(),
                "embeddings": tensors["embeddings"].float(), "landmarks": tensors["landmarks"].numpy(),
                "skipped": json.loads(meta["skipped"]), "notes": json.loads(meta["notes"])}
    except ChecksumMismatchError as exc:
        _altered(exc, "its references are aligned and embedded again")
        return None
    except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt, never trusted
        return None


def _altered(exc: ChecksumMismatchError, what: str) -> None:
    warnings.warn(f"album cache {exc.path}: altered or damaged (its contents differ from the checksum recorded "
                  f"when it was written); {what}", AlbumCacheWarning, stacklevel=3)


def remove_stale(cache_dir: Path, person: str, key: str) -> None:
    """Remove the person's cache files made from other contents of their folder."""
    for path in cache_dir.glob(f"{glob.escape(person)}-*.safetensors"):
        found = _CACHE_NAME.match(path.name[len(person) + 1:])
        if found and found["key"] != key:
            path.unlink(missing_ok=True)


def read_reference_cache(path: Path, device: torch.device, references: int, model_key: str) -> ReferenceCache | None:
    """The reference cache at ``path`` if it holds ``references`` rows encoded under ``model_key``, else None."""
    if not path.is_file():
        return None
    try:
        cache = ReferenceCache.load(path, device=device, require_checksum=True)
    except ChecksumMismatchError as exc:
        _altered(exc, "its references are encoded again")
        return None
    except Exception:  # noqa: BLE001 - a damaged cache file, or one with no checksum, is encoded again
        return None
    return cache if len(cache) == references and cache.model_key == model_key else None


def write_reference_cache(cache: ReferenceCache, path: Path) -> None:
    """Save ``cache``; a read-only folder keeps it in memory only, with a warning."""
    try:
        cache.save(path)
    except OSError as exc:
        warnings.warn(f"{path}: cannot write the reference cache ({exc}); kept in memory only", stacklevel=3)
