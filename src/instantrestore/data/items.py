"""The training item every dataset returns, and the seeded draws that pick its references.

Each item is drawn from an rng seeded by (seed, epoch, index) (``item_rng``), so data is
reproducible in any worker order.
"""
from __future__ import annotations

import numpy as np
import torch

from ..utils.images import uint8_to_tensor

_TAG_ITEM = 0x17


def pad_landmarks(points: np.ndarray | None, num_points: int) -> np.ndarray:
    """float32 [num_points, 2]: ``points`` truncated or NaN-padded; all NaN when None."""
    out = np.full((num_points, 2), np.nan, np.float32)
    if points is not None and num_points:
        n = min(num_points, len(points))
        out[:n] = points[:n]
    return out


def make_item(hq: np.ndarray, lq: np.ndarray, refs: list[np.ndarray], landmarks_hq: np.ndarray | None,
              landmarks_refs: list[np.ndarray | None], refs_max: int, num_points: int,
              identity: str, index: int) -> dict:
    """The training item every dataset returns (the trainer and the evaluation consume this dict).

    lq/hq: float32 [3, H, W] in [-1, 1]; refs: [refs_max, 3, H, W] zero-padded; ref_mask: bool
    [refs_max], True = real reference; landmarks_hq: float32 [P, 2] pixels, NaN where unknown;
    landmarks_refs: [refs_max, P, 2], NaN for padding; identity: str; index: int.
    """
    if not 1 <= len(refs) <= refs_max:
        raise ValueError(f"item {index}: {len(refs)} references, expected 1..{refs_max}")
    h, w = hq.shape[:2]
    ref_arr = np.zeros((refs_max, h, w, 3), np.uint8)
    lm_refs = np.full((refs_max, num_points, 2), np.nan, np.float32)
    for k, (ref, lm) in enumerate(zip(refs, landmarks_refs)):
        ref_arr[k] = ref
        lm_refs[k] = pad_landmarks(lm, num_points)
    ref_t = uint8_to_tensor(ref_arr)
    ref_t[len(refs):] = 0.0
    mask = torch.zeros(refs_max, dtype=torch.bool)
    mask[: len(refs)] = True
    return {"lq": uint8_to_tensor(lq)[0], "hq": uint8_to_tensor(hq)[0], "refs": ref_t, "ref_mask": mask,
            "landmarks_hq": torch.from_numpy(pad_landmarks(landmarks_hq, num_points)),
            "landmarks_refs": torch.from_numpy(lm_refs), "identity": identity, "index": int(index)}


def sample_references(rng: np.random.Generator, num_images: int, target: int, refs_min: int, refs_max: int) -> list[int]:
    """k in refs_min..refs_max (capped by what exists) distinct image indices, never ``target``."""
    others = [j for j in range(num_images) if j != target]
    if not others:
        raise ValueError(f"an identity needs at least 2 images to give a reference, got {num_images}")
    hi = min(refs_max, len(others))
    k = int(rng.integers(min(refs_min, hi), hi + 1))
    return [others[j] for j in rng.choice(len(others), size=k, replace=False)]


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The rng of item ``index`` in ``epoch``: its references and degradation, whatever the worker order."""
    return np.random.default_rng([_TAG_ITEM, int(seed), int(epoch), int(index)])


def check_refs(refs_min: int, refs_max: int) -> None:
    """ValueError unless 1 <= refs_min <= refs_max."""
    if not 1 <= refs_min <= refs_max:
        raise ValueError(f"need 1 <= refs_min <= refs_max, got refs_min={refs_min}, refs_max={refs_max}")

