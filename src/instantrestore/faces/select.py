"""Reference selection: rank candidate photos of a person for one degraded input.

Four cues, each scored per candidate and min-max normalised over the candidate set:
identity similarity (embedder cosine), pose similarity (yaw/pitch proxies from 68
landmarks), sharpness (variance of the Laplacian), and the affine landmark distance on
the eye region (HonestFace, eq. 6: the reference whose landmarks are closest up to an
affine map). The final score is their weighted mean (``SelectionWeights``).

Images are FFHQ-aligned uint8 RGB arrays (S, S, 3), the output of ``align``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from ..utils.images import uint8_to_tensor
from .detect import aligned_landmarks
from .identity import DlibEmbedder, FaceEmbedder
from .landmark_distance import ALD_EYE, affine_landmark_distance


@dataclass(frozen=True)
class SelectionWeights:
    identity: float = 2.0
    pose: float = 0.5
    sharpness: float = 0.25
    landmarks: float = 0.5


@dataclass(frozen=True)
class ReferenceScore:
    """One ranked candidate: ``score`` in [0, 1] (higher is better) and the raw cues behind it."""

    index: int
    name: str
    score: float
    identity: float        # cosine similarity to the input
    pose_distance: float   # |d yaw| + |d pitch| (landmark proxies, dimensionless)
    sharpness: float       # log10(1 + variance of the Laplacian)
    ald: float             # A-LD on eyes and brows, pixels^2 at the crop size

    def to_json(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def head_pose(landmarks68: np.ndarray) -> np.ndarray:
    """(yaw, pitch) proxies from 68 landmarks: nose-tip offset from the eye midpoint along and
    across the eye line, divided by the inter-ocular distance. 0 yaw is frontal."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    axis = right - left
    iod = np.hypot(*axis)
    u = axis / iod
    v = np.array([-u[1], u[0]])
    offset = lm[30] - (left + right) / 2
    jaw_mid = (lm[0] + lm[16]) / 2 - (left + right) / 2  # the nose moves against the jaw line when yawing
    return np.array([(offset - jaw_mid) @ u / iod, offset @ v / iod])


def sharpness(image: np.ndarray) -> float:
    """log10(1 + variance of the Laplacian) of the grey central half of an aligned crop."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    centre = grey[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    return float(np.log10(1.0 + cv2.Laplacian(centre, cv2.CV_64F).var()))


def _normalise(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    span = values.max() - values.min()
    if span <= 1e-12:
        return np.ones_like(values)
    scaled = (values - values.min()) / span
    return scaled if higher_is_better else 1.0 - scaled


def select_references(
    lq: np.ndarray,
    candidates: Sequence[np.ndarray],
    k: int,
    names: Sequence[str] | None = None,
    embedder: FaceEmbedder | None = None,
    weights: SelectionWeights = SelectionWeights(),
    lq_embedding: torch.Tensor | None = None,
    candidate_embeddings: torch.Tensor | None = None,
    candidate_landmarks: np.ndarray | None = None,
) -> list[ReferenceScore]:
    """Rank ``candidates`` for the degraded input ``lq``; return the best ``k`` (fewer if there are fewer).

    ``lq_embedding`` [D], ``candidate_embeddings`` [N, D] (by ``embedder``, L2-normalised) and
    ``candidate_landmarks`` [N, 68, 2] (``aligned_landmarks``) may be given when already known, e.g.
    by an album that ranks the same references for many photos; they are computed otherwise.
    """
    if not len(candidates):
        raise ValueError("no reference candidates to select from")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    names = list(names) if names is not None else [str(i) for i in range(len(candidates))]
    if len(names) != len(candidates):
        raise ValueError(f"got {len(candidates)} candidates but {len(names)} names")
    shapes = {np.shape(i) for i in (lq, *candidates)}
    if len(shapes) != 1:
        raise ValueError(f"input and candidates must be aligned crops of one size, got shapes {sorted(shapes)}")
    if candidate_embeddings is not None and len(candidate_embeddings) != len(candidates):
        raise ValueError(f"got {len(candidates)} candidates but {len(candidate_embeddings)} candidate embeddings")
    if candidate_landmarks is not None and len(candidate_landmarks) != len(candidates):
        raise ValueError(f"got {len(candidates)} candidates but {len(candidate_landmarks)} candidate landmark sets")
    if lq_embedding is None or candidate_embeddings is None:
        embedder = embedder or DlibEmbedder()
        missing = ([lq] if lq_embedding is None else []) + (list(candidates) if candidate_embeddings is None else [])
        emb = embedder.embed(uint8_to_tensor(missing))
        lq_embedding = emb[0] if lq_embedding is None else lq_embedding
        candidate_embeddings = emb[-len(candidates):] if candidate_embeddings is None else candidate_embeddings
    lq_embedding = torch.as_tensor(lq_embedding, dtype=torch.float32).reshape(-1)
    identity = (torch.as_tensor(candidate_embeddings, dtype=torch.float32) @ lq_embedding).numpy().astype(np.float64)
    lq_lm = aligned_landmarks(lq)
    cand_lm = list(candidate_landmarks) if candidate_landmarks is not None else [aligned_landmarks(c) for c in candidates]
    lq_pose = head_pose(lq_lm)
    pose = np.array([np.abs(head_pose(lm) - lq_pose).sum() for lm in cand_lm])
    sharp = np.array([sharpness(c) for c in candidates])
    ald = affine_landmark_distance(np.stack([lm[ALD_EYE] for lm in cand_lm]),
                                   np.repeat(lq_lm[None, ALD_EYE], len(candidates), 0))
    parts = [(weights.identity, _normalise(identity, True)), (weights.pose, _normalise(pose, False)),
             (weights.sharpness, _normalise(sharp, True)), (weights.landmarks, _normalise(ald, False))]
    total = sum(w for w, _ in parts)
    if total <= 0:
        raise ValueError(f"selection weights must have a positive sum, got {weights}")
    score = sum(w * s for w, s in parts) / total
    ranked = [ReferenceScore(i, names[i], float(score[i]), float(identity[i]), float(pose[i]),
                             float(sharp[i]), float(ald[i])) for i in range(len(candidates))]
    ranked.sort(key=lambda r: (-r.score, r.name))
    return ranked[:k]
