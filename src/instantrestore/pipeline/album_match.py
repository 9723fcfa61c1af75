"""Who a face is: its identity embedding against each album person's identity (:class:`Match`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Match:
    """Who a face is: ``person`` (None when no one reaches ``threshold``), its cosine similarity to
    the closest person's identity, that person (``closest``) and the similarity to every person."""

    person: str | None
    similarity: float | None
    closest: str | None
    threshold: float
    similarities: dict[str, float]


def match_identity(embedding: torch.Tensor, identities: dict[str, torch.Tensor], threshold: float) -> Match:
    """Match one face embedding [D] (or [1, D]) to ``identities`` (person -> unit vector [D]): the
    most similar person, when the cosine similarity reaches ``threshold`` (ties: the later name)."""
    emb = F.normalize(torch.as_tensor(embedding).float().reshape(-1), dim=0)
    sims = {person: float(centre @ emb) for person, centre in identities.items()}
    if not sims:
        return Match(None, None, None, threshold, {})
    closest = max(sims, key=lambda p: (sims[p], p))
    person = closest if sims[closest] >= threshold else None
    return Match(person, sims[closest], closest, threshold, sims)
