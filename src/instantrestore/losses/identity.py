"""Identity losses: paper eq. 1 (L_ID = 1 - <R(I_high), R(I_rest)>) and the hard-example ID loss
(eq. 3 of "Reference-Guided Identity Preserving Face Restoration").

R is any frozen ``nn.Module`` mapping [B, 3, S, S] in [-1, 1] to [B, D] embeddings, with an int
attribute ``input_size`` (S) and an optional ``crop`` (x0, y0, x1, y1 fractions of the aligned face
cut before resizing to S; shrinking is bilinear with antialiasing, ``images.crop_and_resize``).
Gradients flow through R to the restored image, never into R.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils.images import crop_and_resize


def identity_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of embeddings [B, D] and [B, D] -> [B], in [0, 2]."""
    return 1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1)


class IdentityLoss(nn.Module):
    """L_ID (eq. 1) or, with ``hard_example_lambda``, the hard-example ID loss (eq. 3 of
    "Reference-Guided Identity Preserving Face Restoration"):

        L_HID = (1 - lambda) * L_ID(I_high, I_rest) + lambda * L_ID(I_ref, I_rest).

    That paper trains with one reference; with several, ``reference="mean"`` averages
    L_ID(I_ref_n, I_rest) over the sample's real references (``ref_mask`` True) and
    ``reference="first"`` uses its first real one. lambda = 0 is exactly plain L_ID.
    The network is set to eval mode and frozen (``requires_grad_(False)``) in place.
    """

    def __init__(self, network: nn.Module, hard_example_lambda: float | None = None, reference: str = "mean"):
        super().__init__()
        size = getattr(network, "input_size", None)
        if not isinstance(size, int) or size <= 0:
            raise ValueError("the identity network needs a positive int attribute `input_size` (its square input side)")
        if hard_example_lambda is not None and not 0.0 <= hard_example_lambda <= 1.0:
            raise ValueError(f"hard_example_lambda must lie in [0, 1], got {hard_example_lambda}")
        if reference not in ("mean", "first"):
            raise ValueError(f"reference must be 'mean' or 'first', not {reference!r}")
        self.network = network.eval().requires_grad_(False)
        self.input_size = size
        self.crop = getattr(network, "crop", None)
        self.hard_example_lambda = hard_example_lambda
        self.reference = reference

    def train(self, mode: bool = True) -> "IdentityLoss":
        super().train(mode)
        self.network.eval()  # frozen: batch-norm statistics never move
        return self

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> [B, D] embeddings (not necessarily unit length)."""
        param = next(self.network.parameters(), None)
        dtype = param.dtype if param is not None else images.dtype
        return self.network(crop_and_resize(images, self.crop, self.input_size, shrink="antialias").to(dtype))

    def _reference_term(self, restored_embedding: torch.Tensor, refs: torch.Tensor,
                        ref_mask: torch.Tensor | None) -> torch.Tensor:
        batch, n = refs.shape[:2]
        mask = torch.ones(batch, n, dtype=torch.bool, device=refs.device) if ref_mask is None else ref_mask.bool()
        if not bool(mask.any(dim=1).all()):
            raise ValueError("hard-example identity loss: every sample needs at least one real reference")
        if self.reference == "first":  # first True slot of each row
            first = torch.zeros_like(mask)
            first[torch.arange(batch, device=mask.device), mask.int().argmax(dim=1)] = True
            mask = first
        rows, slots = mask.nonzero(as_tuple=True)
        with torch.no_grad():
            ref_embeddings = self.embed(refs[rows, slots])
        distance = identity_distance(ref_embeddings, restored_embedding[rows])  # [M]
        per_sample = torch.zeros(batch, device=distance.device).index_add(0, rows, distance)
        return (per_sample / mask.sum(dim=1).to(per_sample)).mean()

    def forward(self, restored: torch.Tensor, target: torch.Tensor, refs: torch.Tensor | None = None,
                ref_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """restored, target: [B, 3, H, W] in [-1, 1]; refs [B, N, 3, H, W] and ref_mask [B, N] (only
        needed with hard_example_lambda). Returns (scalar loss, {"identity_hq": .., "identity_ref": ..})."""
        restored_embedding = self.embed(restored)
        with torch.no_grad():
            target_embedding = self.embed(target)
        hq = identity_distance(target_embedding, restored_embedding).mean()
        lam = self.hard_example_lambda
        if lam is None:
            return hq, {"identity_hq": hq}
        if refs is None:
            raise ValueError("hard-example identity loss needs the references (batch['refs'])")
        ref = self._reference_term(restored_embedding, refs, ref_mask)
        return (1.0 - lam) * hq + lam * ref, {"identity_hq": hq, "identity_ref": ref}
