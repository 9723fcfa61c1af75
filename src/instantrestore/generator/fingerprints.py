"""Fingerprints: short digests that tell weights, references and files apart.

One module for every digest the package records (reference caches, album caches, provenance of
restored files), so that two places never disagree about what "the same model" means.
"""
from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

import torch

from .adapters import is_adapter_param

if TYPE_CHECKING:
    from .model import InstantRestore


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_digest(tensors) -> str:
    """A short fingerprint of some tensors (sums and norms; enough to tell models / references apart)."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for t in tensors:
            t = t.detach().float()
            digest.update(torch.stack([t.sum(), torch.linalg.vector_norm(t)]).double().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def weights_fingerprint(model: InstantRestore) -> str:
    """Fingerprint of the weights the reference branch runs (base UNet and VAE, adapters off).

    Adapters never run in the reference branch, so a cache stays valid across LoRA checkpoints
    that share base weights. Recomputed only when a base tensor was modified in place.
    """
    params = [p for module in (model.unet, model.vae) for n, p in module.named_parameters()
              if not is_adapter_param(n)]
    key = tuple(p._version for p in params) + tuple(p.data_ptr() for p in params[:4])
    cached = getattr(model, "_fingerprint", None)
    if cached is None or cached[0] != key:
        digest = hashlib.sha256(model.config.backbone.encode())
        with torch.no_grad():
            sums = torch.stack([torch.stack([p.sum(), torch.linalg.vector_norm(p)]) for p in params]).double()
        digest.update(sums.cpu().numpy().tobytes())
        cached = (key, digest.hexdigest()[:16])
        model._fingerprint = cached
    return cached[1]


def model_fingerprint(model) -> str:
    """A short fingerprint of everything in ``model`` that changes its output: the base weights and
    the trained adapters (:func:`tensors_digest` of the adapter tensors)."""
    return f"{model.weights_fingerprint()}-{tensors_digest(model.adapter_state_dict().values())}"
