"""Reference verification: do the references show one person, and is it the input's?

A wrong-identity reference leaks its identity into the result (Reference-Guided Identity
Preserving Face Restoration, fig. 5), so references are checked before use. Each reference is
compared with the others: its consensus similarity is the median cosine similarity to the other
references, and it is an outlier when that falls below the embedder's same-person threshold.
With two references that disagree both are flagged (there is no majority). The degraded input
is compared with the mean embedding of the non-outlier references at ``threshold - lq_margin``
(margin 0: measured on real photos, degraded inputs still clear it while a looser threshold let
other people through; docs/bad_input.md). Crops with no detectable face are reported and left
out before any identity is compared (``has_face``). ``screen_detections`` says which detections of
a photo are no face to restore (duplicates, weak hits on texture in degraded photos).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.images import uint8_to_tensor
from .identity import DlibEmbedder, FaceEmbedder

MODES = ("off", "warn", "strict")
# The input must match the references' mean at the same-person threshold itself: on the real photos
# degraded inputs still score >= 0.95 against their own references while other people's reach 0.905,
# so the former looser threshold (0.92 - 0.05) accepted 14 % of wrong people (docs/bad_input.md).
LQ_MARGIN = 0.0


class ReferenceMismatchError(ValueError):
    """Raised in strict mode when references disagree or do not match the input."""


class ReferenceWarning(UserWarning):
    """Issued in warn mode for the same findings."""


@dataclass(frozen=True)
class ReferenceCheck:
    name: str
    consensus_similarity: float | None  # median cosine similarity to the other references
    lq_similarity: float | None         # cosine similarity to the input
    outlier: bool


@dataclass(frozen=True)
class VerificationReport:
    embedder: str
    threshold: float
    lq_threshold: float
    checks: list[ReferenceCheck] = field(default_factory=list)
    lq_consensus_similarity: float | None = None
    faceless: list[str] = field(default_factory=list)  # inputs with no detectable face, left out of the comparison

    @property
    def outliers(self) -> list[ReferenceCheck]:
        return [c for c in self.checks if c.outlier]

    @property
    def lq_matches(self) -> bool | None:
        if self.lq_consensus_similarity is None:
            return None
        return self.lq_consensus_similarity >= self.lq_threshold

    @property
    def ok(self) -> bool:
        return not self.outliers and self.lq_matches is not False and not self.faceless

    def problems(self) -> list[str]:
        lines = [f"no face found in {name}: not compared (is it an aligned face crop? run `instantrestore align` "
                 "on full photos)" for name in self.faceless]
        lines += [f"reference {c.name} looks like another person: median similarity to the other references "
                 f"{c.consensus_similarity:.3f} (cosine distance {1 - c.consensus_similarity:.3f}) "
                 f"< {self.threshold:.3f} ({self.embedder})" for c in self.outliers]
        if self.lq_matches is False:
            lines.append(f"the input does not match the references: similarity {self.lq_consensus_similarity:.3f} "
                         f"< {self.lq_threshold:.3f} ({self.embedder}; degraded inputs score lower, check by eye)")
        return lines

    def to_json(self) -> dict:
        def r(v):
            return None if v is None else round(float(v), 5)
        return {
            "embedder": self.embedder, "threshold": self.threshold, "lq_threshold": self.lq_threshold,
            "ok": self.ok, "lq_consensus_similarity": r(self.lq_consensus_similarity), "lq_matches": self.lq_matches,
            "references": [{"name": c.name, "consensus_similarity": r(c.consensus_similarity),
                            "lq_similarity": r(c.lq_similarity), "outlier": c.outlier} for c in self.checks],
            "faceless": list(self.faceless), "problems": self.problems(),
        }


def verify_embeddings(refs: torch.Tensor, names: Sequence[str], lq: torch.Tensor | None = None,
                      threshold: float = DlibEmbedder.threshold, lq_margin: float = LQ_MARGIN,
                      embedder_name: str = "dlib") -> VerificationReport:
    """Verification on precomputed embeddings: ``refs`` [N, D], ``lq`` [D] or [1, D] (any norm)."""
    refs = F.normalize(refs.float(), dim=-1)
    n = refs.shape[0]
    if n != len(names):
        raise ValueError(f"got {n} reference embeddings but {len(names)} names")
    sims = (refs @ refs.T).numpy()
    consensus = [float(np.median(np.delete(sims[i], i))) if n > 1 else None for i in range(n)]
    outlier = [c is not None and c < threshold for c in consensus]
    lq_sims: list[float | None] = [None] * n
    lq_consensus = None
    if lq is not None:
        lq = F.normalize(lq.float().reshape(1, -1), dim=-1)
        lq_sims = [float(v) for v in (refs @ lq[0]).numpy()]
        keep = [i for i in range(n) if not outlier[i]] or list(range(n))
        centre = F.normalize(refs[keep].mean(0), dim=0)
        lq_consensus = float(centre @ lq[0])
    checks = [ReferenceCheck(names[i], consensus[i], lq_sims[i], outlier[i]) for i in range(n)]
    return VerificationReport(embedder_name, threshold, threshold - lq_margin, checks, lq_consensus)


def verify_references(refs: Sequence[np.ndarray], names: Sequence[str], lq: np.ndarray | None = None,
                      embedder: FaceEmbedder | None = None, mode: str = "warn",
                      lq_margin: float = LQ_MARGIN, check_faces: bool = True, lq_name: str = "the input") -> VerificationReport:
    """Check aligned reference crops (uint8 RGB (S, S, 3)) against each other and the input.

    With ``check_faces`` a crop with no detectable face (``has_face``: noise, a blank or
    white image) is reported in ``faceless`` and left out before identities are compared.
    ``mode='warn'`` issues a ``ReferenceWarning`` per problem, ``'strict'`` raises
    ``ReferenceMismatchError`` listing them, ``'off'`` only returns the report.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not len(refs):
        raise ValueError("no references to verify")
    embedder = embedder or DlibEmbedder()
    faceless: list[str] = []
    if check_faces:
        keep = [i for i, r in enumerate(refs) if has_face(r)]
        faceless = [names[i] for i in range(len(refs)) if i not in keep]
        refs, names = [refs[i] for i in keep], [names[i] for i in keep]
        if lq is not None and not has_face(lq):
            faceless.append(lq_name)
            lq = None
    if refs:
        batch = uint8_to_tensor(list(refs) + ([lq] if lq is not None else []))
        emb = embedder.embed(batch)
        report = verify_embeddings(emb[:len(refs)], names, emb[len(refs)] if lq is not None else None,
                                   embedder.threshold, lq_margin, embedder.name)
    else:
        report = VerificationReport(embedder.name, embedder.threshold, embedder.threshold - lq_margin)
    if faceless:
        report = replace(report, faceless=faceless)
    problems = report.problems()
    if problems and mode == "strict":
        raise ReferenceMismatchError("reference check failed:\n  " + "\n  ".join(problems))
    if mode == "warn":
        for line in problems:
            warnings.warn(line, ReferenceWarning, stacklevel=2)
    return report


# ------------------------------------------------------------------ is there a face at all?
FACE_CHECK_SIDE = 160   # aligned crops are shrunk to this side: the face (~0.6 of it) suits HOG's 80 px window
FACE_SCORE_THRESHOLD = -0.5  # calibrated in docs/bad_input.md (benchmarks/calibrate_verification.py)


def aligned_face_score(crop: np.ndarray) -> float:
    """How face-like an aligned crop (uint8 RGB (S, S, 3)) is: the best dlib HOG detection score
    among detections centred inside the box alignment puts the face in; -inf when there is none.

    Run on a copy shrunk to ``FACE_CHECK_SIDE`` (blur and noise of degraded inputs matter less
    there), with upsampling 1 and an adjusted threshold of -1 so weak faces still score.
    """
    import cv2

    from .detect import _hog, canonical_box

    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"expected an RGB crop (S, S, 3), got {crop.shape}")
    small = cv2.resize(crop, (FACE_CHECK_SIDE, FACE_CHECK_SIDE), interpolation=cv2.INTER_AREA)
    rects, scores, _ = _hog().run(np.ascontiguousarray(small), 1, -1.0)
    x0, y0, x1, y1 = canonical_box(FACE_CHECK_SIDE, FACE_CHECK_SIDE)
    best = -np.inf
    for rect, score in zip(rects, scores):
        cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            best = max(best, float(score))
    return best


def has_face(crop: np.ndarray, threshold: float = FACE_SCORE_THRESHOLD) -> bool:
    """True when ``aligned_face_score(crop) >= threshold`` (see the calibration in docs/bad_input.md)."""
    return aligned_face_score(crop) >= threshold


# ------------------------------------------------------------------ which detections of a photo are faces?
DUPLICATE_OVERLAP = 0.5  # share of a detection's box inside a larger face's box that makes it the same face
WEAK_SCORE_RATIO = 0.25  # a detection scoring under this share of the photo's clearest face is not taken for one


def screen_detections(faces: Sequence, crops: Sequence[np.ndarray] | None = None,
                      face_threshold: float = FACE_SCORE_THRESHOLD) -> list[str | None]:
    """Why each detection of one photo is not a face to restore (None: it is one), largest first.

    faces: the photo's ``detect.Face`` records (box, score, detector), largest first; crops: their
    aligned crops (uint8 RGB), for the face check. A detection is dropped when its box lies mostly
    (``DUPLICATE_OVERLAP``) inside a larger face kept before it (a duplicate), when it scores under
    ``WEAK_SCORE_RATIO`` of the photo's clearest detection (texture taken for a face in a degraded
    photo), or when it is not the clearest, came from HOG and its aligned crop fails ``has_face``
    (the clearest is why the photo counts as having a face; CNN detections are not re-checked: HOG
    found nothing in that photo, so its check says nothing about them).
    """
    best = max((float(f.score) for f in faces), default=0.0)
    clearest = max(range(len(faces)), key=lambda i: float(faces[i].score), default=None)
    reasons: list[str | None] = []
    kept: list[int] = []
    for i, face in enumerate(faces):
        reason = None
        for j in kept:
            overlap = _overlap(face.box, faces[j].box)
            if overlap >= DUPLICATE_OVERLAP:
                reason = f"duplicate of face {j} ({overlap:.0%} of its box inside face {j}'s)"
                break
        if reason is None and best > 0 and float(face.score) < WEAK_SCORE_RATIO * best:
            reason = (f"weak detection, likely not a face: score {face.score:.2f} < {WEAK_SCORE_RATIO:g} x "
                      f"{best:.2f} of the photo's clearest face")
        if reason is None and crops is not None and i != clearest and getattr(face, "detector", "hog") == "hog":
            score = aligned_face_score(crops[i])
            if score < face_threshold:
                reason = f"no face in its aligned crop (face score {score:.2f} < {face_threshold:.2f})"
        reasons.append(reason)
        if reason is None:
            kept.append(i)
    return reasons


def _overlap(box, other) -> float:
    """Share of ``box``'s area (x0, y0, x1, y1) inside ``other``."""
    w = min(box[2], other[2]) - max(box[0], other[0])
    h = min(box[3], other[3]) - max(box[1], other[1])
    area = max(1e-9, (box[2] - box[0]) * (box[3] - box[1]))
    return max(0.0, w) * max(0.0, h) / area
