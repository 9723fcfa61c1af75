"""Held-out synthetic test cases and the pixel/attention probes the benchmark measures them with.

A case is one person of a world seed that training never used: photo 0 degraded by a fixed
draw of a preset (``sr8`` by default) is the target, photos 1..4 are the references, photo 0
re-rendered with a small pose/light jitter is the *oracle* reference (the ground truth itself,
as copyable as a reference can be), and the renderer's exact landmarks say where the marks,
irises and facial points are. Every case depends only on (world seed, world style, identity,
size, preset, degradation seed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data import probes, synthetic
from ..data.degradations import random_degrade
from ..generator.attention import CapturedAttention
from ..generator.token_grid import containing_tokens, inside_image, token_coords
from ..utils.images import tensor_to_uint8

# A mark counts as present when its contrast (probes.mark_contrast, sized to the mark) is at least this
# share of the same mark's contrast in the ground truth (docs/benchmark.md).
MARK_THRESHOLD = 0.5
ORACLE_JITTER = 1  # the oracle reference's jitter draw (data.synthetic.render)
MAX_REFS = 4
_TAG_DEGRADE = 0xBE  # keeps the benchmark's degradation draws apart from the datasets' streams
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)  # iBUG rows of the eye openings (eye_centers order)


@dataclass(frozen=True)
class SynthCase:
    """One held-out person.

    hq / lq: uint8 (S, S, 3) RGB ground truth (photo 0) and its degraded copy; refs: photos
    1..4 of the same person; wrong_refs: photos 1..4 of another held-out person, whose photo 0
    is ``wrong_hq`` (never a reference, used to measure similarity to that person).
    landmarks: float32 [68 + M, 2] pixels of ``hq`` (marks last, rows ``mark_rows``);
    ref_landmarks / wrong_ref_landmarks: one such array per reference. oracle_ref /
    oracle_landmarks: photo 0 re-rendered with jitter. mark_radii: float32 [M] pixels;
    mark_contrast: float32 [M] each mark's contrast in ``hq`` (what "present" is measured against).
    """

    identity: int
    wrong_identity: int
    hq: np.ndarray
    lq: np.ndarray
    refs: tuple[np.ndarray, ...]
    wrong_refs: tuple[np.ndarray, ...]
    wrong_hq: np.ndarray
    landmarks: np.ndarray
    mark_rows: slice
    ref_landmarks: tuple[np.ndarray, ...]
    wrong_ref_landmarks: tuple[np.ndarray, ...]
    eye_centers: np.ndarray
    iris_radius: float
    oracle_ref: np.ndarray
    oracle_landmarks: np.ndarray
    mark_radii: np.ndarray
    mark_contrast: np.ndarray

    @property
    def size(self) -> int:
        """Image side in pixels."""
        return int(self.hq.shape[0])

    @property
    def marks(self) -> np.ndarray:
        """float32 [M, 2] pixel centres of this person's marks in ``hq``."""
        return self.landmarks[self.mark_rows]


def make_case(world_seed: int, identity: int, wrong_identity: int, size: int = 128, preset: str = "sr8",
              degrade_seed: int = 0, style: str = "classic") -> SynthCase:
    """Render held-out person ``identity`` of ``world_seed`` (and the wrong person ``wrong_identity``)."""
    if identity == wrong_identity:
        raise ValueError(f"the wrong-identity person must differ from the target, both are {identity}")
    person = synthetic.sample_identity(world_seed, identity, style)
    other = synthetic.sample_identity(world_seed, wrong_identity, style)
    target = synthetic.render(person, 0, size)
    oracle = synthetic.render(person, 0, size, jitter=ORACLE_JITTER)
    radii = np.array([m.radius * size for m in person.marks], np.float32)
    refs = [synthetic.render(person, j, size) for j in range(1, MAX_REFS + 1)]
    wrong = [synthetic.render(other, j, size) for j in range(0, MAX_REFS + 1)]
    rng = np.random.default_rng([_TAG_DEGRADE, int(world_seed), int(identity), int(degrade_seed)])
    return SynthCase(
        identity=int(identity), wrong_identity=int(wrong_identity), hq=target.image,
        lq=random_degrade(target.image, preset, rng), refs=tuple(r.image for r in refs),
        wrong_refs=tuple(w.image for w in wrong[1:]), wrong_hq=wrong[0].image, landmarks=target.landmarks,
        mark_rows=target.mark_slice, ref_landmarks=tuple(r.landmarks for r in refs),
        wrong_ref_landmarks=tuple(w.landmarks for w in wrong[1:]), eye_centers=target.eye_centers,
        iris_radius=float(target.iris_radius), oracle_ref=oracle.image, oracle_landmarks=oracle.landmarks,
        mark_radii=radii, mark_contrast=np.array([probes.mark_contrast(target.image, xy, radius=r) for xy, r in
                                                  zip(target.landmarks[target.mark_slice], radii)], np.float32))


def make_cases(world_seed: int, identities: int, size: int = 128, preset: str = "sr8",
               degrade_seed: int = 0, style: str = "classic") -> list[SynthCase]:
    """Cases for identities 0..N-1; person i's wrong references come from identity N + i (also held out)."""
    if identities < 1:
        raise ValueError(f"need at least one identity, got {identities}")
    return [make_case(world_seed, i, identities + i, size, preset, degrade_seed, style) for i in range(identities)]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[3, S, S] or [1, 3, S, S] in [-1, 1] -> uint8 (S, S, 3) RGB."""
    return tensor_to_uint8(image.reshape(-1, *image.shape[-3:])[:1])[0]


# ------------------------------------------------------------------ pixel probes

def marks_present(image: np.ndarray, case: SynthCase, threshold: float = MARK_THRESHOLD,
                  positions: np.ndarray | None = None) -> tuple[int, int]:
    """(marks of ``case`` present in ``image``, marks probed): a mark is present when its contrast
    (``probes.mark_contrast`` sized to the mark) is at least ``threshold`` times its contrast in
    the ground truth. Marks with no contrast in the ground truth (off the image) are not probed.
    positions: [M, 2] where to probe in ``image`` (default the ground truth's, ``case.marks``)."""
    found = total = 0
    where = case.marks if positions is None else positions
    for xy, radius, truth in zip(where, case.mark_radii, case.mark_contrast):
        if truth <= 0:
            continue
        total += 1
        found += probes.mark_contrast(image, xy, radius=float(radius)) >= threshold * truth
    return int(found), int(total)


def eye_color_error(image: np.ndarray, case: SynthCase) -> float:
    """Mean RGB distance (0-441) between the iris colours of ``image`` and of the ground truth,
    measured at the known eye centres and radius; NaN when neither eye has iris pixels."""
    errors = []
    for k, rows in enumerate((LEFT_EYE, RIGHT_EYE)):
        polygon = case.landmarks[rows]
        try:
            ours = probes.iris_color(image, case.eye_centers[k], case.iris_radius, polygon)
            truth = probes.iris_color(case.hq, case.eye_centers[k], case.iris_radius, polygon)
        except ValueError:  # a nearly closed eye leaves no iris annulus inside the opening
            continue
        errors.append(float(np.linalg.norm(ours - truth)))
    return float(np.mean(errors)) if errors else math.nan


# ------------------------------------------------------------------ attention

def tokens_near(xy: np.ndarray, size: int, hw: tuple[int, int], radius: float) -> np.ndarray:
    """[..., 2] pixel points -> [..., h * w] bool: token centres within ``radius`` tokens (NaN: none)."""
    h, w = hw
    centres = token_coords(xy, (size, size), hw)
    grid_y, grid_x = np.mgrid[0:h, 0:w]
    dist = np.hypot(grid_x.reshape(-1) - centres[..., :1], grid_y.reshape(-1) - centres[..., 1:])
    return np.nan_to_num(dist, nan=np.inf) <= radius


def correct_region_mass(attention: CapturedAttention, target_xy: np.ndarray, ref_xy: np.ndarray, size: int,
                        radius: float = 1.5) -> tuple[float, float]:
    """Attention mass that queries at target landmarks put on the same landmark in the references.

    attention: one layer, batch 1 (probs [1, heads, Lq, N, Lk]); target_xy: [P, 2] pixels of the
    target's landmarks; ref_xy: [N, P, 2] the same landmarks in each reference (NaN = unknown).
    For each finite landmark inside the image, the query is the token containing it; its mass
    (mean over heads) on reference tokens whose centres lie within ``radius`` tokens of the
    landmark in that reference is summed over references. Returns (mean mass over landmarks,
    the mass uniform attention would give) - NaN, NaN when no landmark qualifies.
    """
    probs = attention.probs[0].float().mean(0)  # [Lq, N, Lk]
    (kh, kw) = attention.key_hw
    n_refs = probs.shape[1]
    if n_refs == 0 or len(ref_xy) != n_refs:
        return math.nan, math.nan
    points = np.flatnonzero(inside_image(target_xy, (size, size)))
    if points.size == 0:
        return math.nan, math.nan
    rows = probs[torch.from_numpy(containing_tokens(target_xy[points], (size, size), attention.query_hw))]  # [P', N, Lk]
    region = torch.from_numpy(tokens_near(ref_xy[:, points], size, (kh, kw), radius)).permute(1, 0, 2)  # [P', N, Lk]
    mass = (rows * region).sum(dim=(1, 2))
    chance = region.sum(dim=(1, 2)).float() / (n_refs * kh * kw)
    return float(mass.mean()), float(chance.mean())


def attention_mass(captured: dict[str, CapturedAttention], case: SynthCase, refs: int, wrong: bool = False,
                   radius: float = 1.5, oracle: bool = False) -> tuple[float, float]:
    """``correct_region_mass`` averaged over every captured layer (see docs/benchmark.md).
    oracle: the one reference was ``case.oracle_ref``."""
    if refs == 0 or not captured:
        return math.nan, math.nan
    # Another person has other marks, so only the 68 facial points correspond across people.
    points = synthetic.NUM_IBUG if wrong else len(case.landmarks)
    if oracle:
        ref_landmarks: tuple[np.ndarray, ...] = (case.oracle_landmarks,)
    else:
        ref_landmarks = case.wrong_ref_landmarks if wrong else case.ref_landmarks
    ref_lm = np.stack([lm[:points] for lm in ref_landmarks[:refs]])
    target = case.landmarks[:points]
    values = [correct_region_mass(att, target, ref_lm, case.size, radius) for att in captured.values()]
    masses = [m for m, _ in values if math.isfinite(m)]
    chances = [c for _, c in values if math.isfinite(c)]
    return (float(np.mean(masses)) if masses else math.nan, float(np.mean(chances)) if chances else math.nan)
