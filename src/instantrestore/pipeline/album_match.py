"""Who a face is: the open-set, degradation-aware decision that names an album person or no one.

Restoring a face with another person's references swaps its identity, so the rule errs towards
"no one" (the face is then restored blind, or kept): a person is named only when

1. their **score** (the mean cosine similarity of the face to each of their references, not to one
   mean identity: a person with many references is not closer to everyone for it) reaches
   ``threshold_at(degradation)``, and
2. the score leads the **second-best** person's by ``margin_at(degradation)``: in an album of many
   people, a blurred face often comes out nearly as close to someone else.

Both requirements rise with the face's estimated degradation (``strength.estimate_degradation`` of
the aligned crop: 0 sharp, 1 nothing left in the fine octaves; small faces upsampled to the crop
score high too), between ``ramp[0]`` and ``ramp[1]``: blur and downsampling pull every embedding
towards the average face, so a degraded face is close to many people at once. A face named with a
margin less than ``soft_margin`` above the requirement is restored at reduced strength
(``strength_scale``, down to ``min_strength_scale``), so that a doubtful match pulls less.

The defaults are calibrated for dlib on real degraded photos (``benchmarks/album_matching.py``,
docs/faces.md); ``rule_for(embedder)`` scales them to another embedder's threshold.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import torch
import torch.nn.functional as F

__all__ = ["Match", "MatchRule", "DLIB_RULE", "rule_for", "person_scores", "decide_match", "match_face"]


@dataclass(frozen=True)
class MatchRule:
    """The named parameters of the decision (cosine similarities of the embedder's space).

    threshold / degraded_threshold: the score a person needs for a sharp face / a face at or beyond
    ``ramp[1]`` degradation (linear in between, ``threshold`` up to ``ramp[0]``). margin /
    degraded_margin: the lead over the second-best person, the same way. soft_margin: a match
    whose lead is less than this above the requirement gets ``strength_scale`` < 1, linearly down
    to ``min_strength_scale`` at the requirement itself (0 turns reduced strength off).
    """

    threshold: float = 0.92
    degraded_threshold: float = 0.925
    margin: float = 0.01
    degraded_margin: float = 0.02
    ramp: tuple[float, float] = (0.6, 1.0)
    soft_margin: float = 0.02
    min_strength_scale: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.ramp
        if not 0.0 <= lo < hi:
            raise ValueError(f"ramp must be 0 <= low < high, got {self.ramp}")
        if self.soft_margin < 0 or not 0.0 <= self.min_strength_scale <= 1.0:
            raise ValueError("soft_margin must be >= 0 and min_strength_scale in [0, 1]")

    def _at(self, clean: float, degraded: float, degradation: float | None) -> float:
        if degradation is None:
            degradation = self.ramp[1]  # unknown: the strictest requirement
        t = min(1.0, max(0.0, (degradation - self.ramp[0]) / (self.ramp[1] - self.ramp[0])))
        return clean + (degraded - clean) * t

    def threshold_at(self, degradation: float | None) -> float:
        """The score a person needs for a face of this degradation (None: as for the most degraded)."""
        return self._at(self.threshold, self.degraded_threshold, degradation)

    def margin_at(self, degradation: float | None) -> float:
        """The lead over the second-best person a face of this degradation needs (None: the largest)."""
        return self._at(self.margin, self.degraded_margin, degradation)


DLIB_RULE = MatchRule()


def rule_for(embedder_name: str, threshold: float) -> MatchRule:
    """The rule for an embedder: ``DLIB_RULE`` for dlib; for another, its own ``threshold`` and the
    dlib rule's offsets scaled by ``(1 - threshold) / (1 - 0.92)`` (uncalibrated: measure it with
    ``benchmarks/album_matching.py --embedder``)."""
    if embedder_name == "dlib" and threshold == DLIB_RULE.threshold:
        return DLIB_RULE
    scale = (1.0 - threshold) / (1.0 - DLIB_RULE.threshold)
    return replace(DLIB_RULE, threshold=threshold,
                   degraded_threshold=threshold + (DLIB_RULE.degraded_threshold - DLIB_RULE.threshold) * scale,
                   margin=DLIB_RULE.margin * scale, degraded_margin=DLIB_RULE.degraded_margin * scale,
                   soft_margin=DLIB_RULE.soft_margin * scale)


@dataclass(frozen=True)
class Match:
    """The decision for one face. person: who it is (None: no one, ``reason`` says why); similarity:
    the closest person's score, ``closest`` that person; ``second`` / ``margin``: the runner-up and
    the closest person's lead over them; threshold / required_margin: what this face needed (at its
    ``degradation``); strength_scale: 1, less for a match with a small lead, None for no match;
    similarities: every person's score."""

    person: str | None
    similarity: float | None
    closest: str | None
    threshold: float
    similarities: dict[str, float] = field(default_factory=dict)
    second: str | None = None
    margin: float | None = None
    required_margin: float = 0.0
    degradation: float | None = None
    strength_scale: float | None = None
    reason: str | None = None

    def report(self) -> dict:
        """The fields of a face's report entry: person, closest, similarity, second, margin, degradation."""
        def r(v):
            return None if v is None else round(float(v), 5)
        return {"person": self.person, "closest": self.closest, "similarity": r(self.similarity),
                "second": self.second, "margin": r(self.margin), "degradation": self.degradation}

    def scaled(self, strength: float) -> tuple[float, str | None]:
        """(the strength to restore at, a note when lowered): ``strength`` times ``strength_scale``."""
        if self.strength_scale is None or self.strength_scale >= 1.0:
            return strength, None
        value = round(strength * self.strength_scale, 4)
        return value, (f"matched {self.person} by a small margin ({self.margin:.3f} over {self.second}, "
                       f"{self.required_margin:.3f} required): restored at strength {value:.2f} instead of "
                       f"{strength:.2f}")


def person_scores(embedding: torch.Tensor, references: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Each person's score for one face embedding [D] (or [1, D]): the mean cosine similarity to each of
    their reference embeddings ([N, D] or [D]; any norm). Persons without references are left out."""
    emb = F.normalize(torch.as_tensor(embedding).float().reshape(-1), dim=0)
    scores = {}
    for person, refs in references.items():
        refs = torch.as_tensor(refs).float().reshape(-1, emb.shape[0])
        if len(refs):
            scores[person] = float((F.normalize(refs, dim=-1) @ emb).mean())
    return scores


def decide_match(similarities: Mapping[str, float], rule: MatchRule = DLIB_RULE,
                 degradation: float | None = None) -> Match:
    """The decision on per-person scores (``person_scores``) for a face of estimated ``degradation``
    (None: unknown, judged as the most degraded): the closest person when their score reaches
    ``rule.threshold_at`` and leads the second-best's by ``rule.margin_at`` (ties: the later name)."""
    sims = {p: float(v) for p, v in similarities.items()}
    threshold, required = rule.threshold_at(degradation), rule.margin_at(degradation)
    if not sims:
        return Match(None, None, None, threshold, {}, required_margin=required, degradation=degradation,
                     reason="the album has no usable reference photo")
    ranked = sorted(sims, key=lambda p: (sims[p], p), reverse=True)
    closest, best = ranked[0], sims[ranked[0]]
    second = ranked[1] if len(ranked) > 1 else None
    margin = best - sims[second] if second is not None else None
    common = dict(similarities=sims, second=second, margin=margin, required_margin=required, degradation=degradation)
    how = "" if degradation is None else f" for a face of degradation {degradation:.2f}"
    if best < threshold:
        return Match(None, best, closest, threshold, **common,
                     reason=f"matches no person of the album (closest {closest}: similarity "
                            f"{_below(best, threshold)}{how})")
    if margin is not None and margin < required:
        return Match(None, best, closest, threshold, **common,
                     reason=f"too close to call: {closest} (similarity {best:.3f}) leads {second} by margin "
                            f"{_below(margin, required)}{how}")
    lead = float("inf") if margin is None else margin - required
    scale = 1.0 if rule.soft_margin <= 0 or lead >= rule.soft_margin else \
        rule.min_strength_scale + (1.0 - rule.min_strength_scale) * lead / rule.soft_margin
    return Match(closest, best, closest, threshold, **common, strength_scale=scale)


def _below(value: float, limit: float) -> str:
    """'value < limit' with 3 decimals, or 4 where 3 would show them equal."""
    digits = 3 if f"{value:.3f}" != f"{limit:.3f}" else 4
    return f"{value:.{digits}f} < {limit:.{digits}f}"


def match_face(embedding: torch.Tensor, references: Mapping[str, torch.Tensor], rule: MatchRule = DLIB_RULE,
               degradation: float | None = None) -> Match:
    """``decide_match`` of ``person_scores(embedding, references)``: who one face is."""
    return decide_match(person_scores(embedding, references), rule, degradation)
