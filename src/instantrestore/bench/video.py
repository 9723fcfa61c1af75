"""Temporal consistency on synthetic clips: does a person stay the same person from frame to frame?

Each held-out person of a world seed the model never saw moves over ``frames`` frames
(``data.synthetic.clips``: translation, rotation, scale, expression); every frame is degraded
independently (``sr8`` with a fresh draw). Every frame is restored by the model with a fixed seed,
blind and with the person's 4 reference photos (the same 4 for every frame, as a video track reads
them), and measured against its own ground truth:

- identity similarity to the ground-truth frame by the *evaluation* network: the mean over frames,
  and its standard deviation over frames (how much the identity wavers), per clip;
- marks present (``bench.cases.MARK_THRESHOLD`` of the ground truth's contrast at the frame's marks);
- flicker: the mean absolute change (0-255) from frame t-1 to t inside the face, after warping frame
  t-1 onto frame t with the known head motion, of the restored frames minus that of the ground truth
  (the ground truth's own change: expression, light on the moved face). 0 = changes no more than
  the real face; more = flicker the restoration adds. ``change`` is the restored frames' change alone.

``remedy`` / ``weight`` restore the frames with one of ``bench.video_remedies.REMEDIES`` (temporal
smoothing of the output, the latent, the attention outputs, the input, or the previous frame as a
reference), tried where per-frame restoration misses a target (docs/video.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from ..data import probes, synthetic
from ..data.synthetic.clips import degrade_clip, render_clip
from ..faces.identity import cosine_similarity
from ..generator.model import InstantRestore
from ..utils.images import uint8_to_tensor
from .cases import MARK_THRESHOLD
from .synth import DEFAULT_WORLD_SEED, eval_embedder
from .video_remedies import blend_previous, restore_clip, warp_onto

__all__ = ["blend_previous", "check_targets", "evaluate_clip", "frame_change", "run_video_bench", "summarize"]

SETTINGS = ("blind", "4 refs")


@dataclass
class ClipResult:
    """One clip under one setting: per-frame identity similarity, marks found/probed, per-step changes."""

    id_sim: list[float]
    marks_found: int
    marks_total: int
    change: list[float]
    truth_change: list[float]

    @property
    def flicker(self) -> float:
        return float(np.mean(self.change) - np.mean(self.truth_change))


def _face_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Boolean (S, S) inside the hull of the 68 facial points, shrunk by 2 px (edges of the face moved
    against a still background are not the face's own change)."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(landmarks[:synthetic.NUM_IBUG].astype(np.int32)), 1)
    return cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)


def frame_change(prev: np.ndarray, now: np.ndarray, m_prev: np.ndarray, m_now: np.ndarray,
                 mask: np.ndarray) -> float:
    """Mean absolute difference (0-255) inside ``mask`` between ``now`` and ``prev`` warped onto it."""
    moved = warp_onto(prev, m_prev, m_now).astype(np.float32)
    return float(np.abs(now.astype(np.float32) - moved)[mask].mean())


@torch.inference_mode()
def evaluate_clip(model: InstantRestore, embed, identity: int, world_seed: int = DEFAULT_WORLD_SEED,
                  frames: int = 16, preset: str = "sr8", remedy: str = "per-frame", weight: float = 0.0,
                  seed: int = 0, style: str = "classic", draws: str = "fresh") -> dict[str, ClipResult]:
    """Restore (``restore_clip`` with ``remedy`` at ``weight``) and measure one held-out person's clip
    under each of ``SETTINGS``. ``draws``: the degradation of each frame ("fresh": its own draw, as a
    camera's; "fixed": one draw for all; "none": the clean frames), to tell what varies the identity."""
    size = model.config.image_size
    person = synthetic.sample_identity(world_seed, identity, style)
    clean = render_clip(person, frames, size, seed=world_seed)
    truth = [c.image for c in clean]
    if draws not in ("fresh", "fixed", "none"):
        raise ValueError(f"draws: 'fresh', 'fixed' or 'none', got {draws!r}")
    degraded = [t.copy() for t in truth] if draws == "none" else degrade_clip(truth, preset, identity, draws == "fixed")
    refs = uint8_to_tensor(tuple(synthetic.render(person, j, size).image for j in range(1, 5))).to(model.device)
    cache = model.encode_references(refs) if hasattr(model, "encode_references") else refs
    matrices = [c.matrix.astype(np.float64) for c in clean]
    gt_emb = embed(uint8_to_tensor(tuple(truth)))
    results = {}
    for name in SETTINGS:
        # one frame at a time, in order, as the video job runs
        outputs = restore_clip(model, degraded, matrices, None if name == "blind" else cache, remedy, weight, seed)
        emb = embed(uint8_to_tensor(tuple(outputs)))
        found = total = 0
        for t, c in enumerate(clean):
            marks = c.landmarks[c.mark_slice]
            radii = [m.radius * size for m in person.marks]
            for xy, r in zip(marks, radii):
                reference = probes.mark_contrast(truth[t], xy, radius=r)
                if reference <= 0:
                    continue
                total += 1
                found += probes.mark_contrast(outputs[t], xy, radius=r) >= MARK_THRESHOLD * reference
        change, truth_change = [], []
        for t in range(1, frames):
            mask = _face_mask(clean[t].landmarks, size)
            change.append(frame_change(outputs[t - 1], outputs[t], matrices[t - 1], matrices[t], mask))
            truth_change.append(frame_change(truth[t - 1], truth[t], matrices[t - 1], matrices[t], mask))
        results[name] = ClipResult(id_sim=[float(v) for v in cosine_similarity(emb, gt_emb)], marks_found=found,
                                   marks_total=total, change=change, truth_change=truth_change)
    results["_frames"] = {"degraded": degraded, "truth": truth}  # type: ignore[assignment]
    return results


def summarize(per_clip: list[dict[str, ClipResult]]) -> dict[str, dict[str, float]]:
    """Per setting, means over clips: id_mean, id_std (over frames, then averaged), marks, flicker, change."""
    table = {}
    for name in SETTINGS:
        rows = [clip[name] for clip in per_clip]
        found, total = sum(r.marks_found for r in rows), sum(r.marks_total for r in rows)
        table[name] = {"id_mean": float(np.mean([np.mean(r.id_sim) for r in rows])),
                       "id_std": float(np.mean([np.std(r.id_sim) for r in rows])),
                       "marks_present": found / total if total else math.nan,
                       "flicker": float(np.mean([r.flicker for r in rows])),
                       "change": float(np.mean([np.mean(r.change) for r in rows])),
                       "truth_change": float(np.mean([np.mean(r.truth_change) for r in rows]))}
    return table


def check_targets(table: dict[str, dict[str, float]]) -> dict[str, bool]:
    """The issue's targets, with references against blind: ID std <= half, flicker <= 0.75x, mean ID >= +0.15."""
    blind, refs = table["blind"], table["4 refs"]
    return {"id_std_at_most_half": refs["id_std"] <= 0.5 * blind["id_std"],
            "flicker_at_most_0.75x": refs["flicker"] <= 0.75 * blind["flicker"],
            "id_mean_plus_0.15": refs["id_mean"] >= blind["id_mean"] + 0.15}


def run_video_bench(model: InstantRestore, eval_network: nn.Module, identities: int = 8, frames: int = 16,
                    world_seed: int = DEFAULT_WORLD_SEED, preset: str = "sr8", remedy: str = "per-frame",
                    weight: float = 0.0, draws: str = "fresh") -> tuple[dict, list[dict]]:
    """Every clip of identities 0..N-1: (the summary table, the per-clip results)."""
    model.eval()
    embed = eval_embedder(eval_network.eval()).embed
    per_clip = [evaluate_clip(model, embed, i, world_seed, frames, preset, remedy, weight, draws=draws)
                for i in range(identities)]
    return summarize(per_clip), per_clip
