"""The demo: restore one held-out synthetic person blind and with references, and show the difference.

It renders a person of a world seed the shipped model never saw (references = photos 1..k, target
= photo 0 degraded with ``sr8``), restores it twice with the same model - without and with the
references - and writes ``grid.png`` (degraded / blind / with references / ground truth /
references, then the same four enlarged around the marks and around the eyes) and
``metrics.json`` (identity similarity by the evaluation network, PSNR, SSIM, marks present,
eye-colour error, for both). Runs on a CPU in seconds, with no download. ``DEMO_OUTPUTS`` names the
files and how the demo recognises its own (the grid records ``{"command": "demo", ...}``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..faces.identity import cosine_similarity
from ..generator.model import InstantRestore
from ..metrics.image import psnr, ssim
from ..utils.files import atomic_write_text
from ..utils.images import uint8_to_tensor
from ..utils.outputs import json_with, recorded_by
from .cases import SynthCase, eye_color_error, make_case, marks_present, to_uint8
from .report import comparison_grid, write_png
from .synth import DEFAULT_WORLD_SEED, eval_embedder

# the files the demo writes and, for each, the check that recognises one it wrote before
DEMO_OUTPUTS = {"grid.png": recorded_by("demo"), "metrics.json": json_with("id_sim_blind", "id_sim_refs", "world_seed")}

# make_case also renders a second person (the benchmark's wrong references); the demo does not show it.
_OTHER_OFFSET = 10_000


def _measure(image: np.ndarray, case, embedding: torch.Tensor, gt_embedding: torch.Tensor) -> dict[str, float]:
    found, total = marks_present(image, case)
    return {"id_sim": float(cosine_similarity(embedding, gt_embedding)[0]), "psnr": float(psnr(image, case.hq)[0]),
            "ssim": float(ssim(image, case.hq)[0]), "marks_present": found / total if total else float("nan"),
            "eye_color_error": eye_color_error(image, case)}


@torch.inference_mode()
def run_demo(out: str | Path, model: InstantRestore, eval_network: nn.Module, identity: int = 0, refs: int = 4,
             world_seed: int = DEFAULT_WORLD_SEED, preset: str = "sr8", style: str = "classic") -> dict:
    """Restore held-out person ``identity`` of ``world_seed`` (world style ``style``, the model's
    training world's) blind and with ``refs`` (1-4) references; write ``out/grid.png`` and
    ``out/metrics.json`` atomically; return the metrics dict."""
    if not 1 <= refs <= 4:
        raise ValueError(f"--refs must be 1..4 (the demo renders 4 reference photos), got {refs}")
    if identity < 0:
        raise ValueError(f"--identity must be >= 0, got {identity}")
    start = time.perf_counter()
    model.eval()
    case = make_case(world_seed, identity, identity + _OTHER_OFFSET, model.config.image_size, preset, style=style)
    lq = uint8_to_tensor(case.lq).to(model.device)
    reference_images = case.refs[:refs]
    blind = model(lq).image
    with_refs = model(lq, references=uint8_to_tensor(reference_images).to(model.device)).image
    embed = eval_embedder(eval_network.eval()).embed
    images = {"degraded": case.lq, "blind": to_uint8(blind), "with references": to_uint8(with_refs)}
    embeddings = embed(torch.cat([uint8_to_tensor(case.hq), uint8_to_tensor(case.lq), blind.float().cpu(),
                                  with_refs.float().cpu()]))
    gt_emb = embeddings[0:1]
    measured = {name: _measure(images[name], case, embeddings[k:k + 1], gt_emb)
                for k, name in ((1, "degraded"), (2, "blind"), (3, "with references"))}
    metrics = {
        "id_sim_blind": measured["blind"]["id_sim"], "id_sim_refs": measured["with references"]["id_sim"],
        "id_sim_degraded": measured["degraded"]["id_sim"],
        "psnr_blind": measured["blind"]["psnr"], "psnr_refs": measured["with references"]["psnr"],
        "ssim_blind": measured["blind"]["ssim"], "ssim_refs": measured["with references"]["ssim"],
        "marks_present_blind": measured["blind"]["marks_present"],
        "marks_present_refs": measured["with references"]["marks_present"],
        "marks_present_degraded": measured["degraded"]["marks_present"],
        "eye_color_error_blind": measured["blind"]["eye_color_error"],
        "eye_color_error_refs": measured["with references"]["eye_color_error"],
        "identity": identity, "world_seed": world_seed, "world_style": style, "refs": refs, "preset": preset,
        "image_size": model.config.image_size, "marks": len(case.marks),
        "seconds": round(time.perf_counter() - start, 2),
    }
    row = {**images, "ground truth": case.hq, **{f"reference {k + 1}": ref for k, ref in enumerate(reference_images)}}
    columns = ("degraded", "blind", "with references", "ground truth", *[f"reference {k + 1}" for k in range(refs)])
    zoomed = ("degraded", "blind", "with references", "ground truth")
    rows = [row] + [{name: zoom(row[name], box) for name in zoomed} for box in detail_boxes(case)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    made = {"command": "demo", "identity": identity, "refs": refs, "world_seed": world_seed, "preset": preset}
    write_png(out / "grid.png", comparison_grid(rows, columns), provenance=json.dumps(made, sort_keys=True))
    atomic_write_text(out / "metrics.json", json.dumps({k: _finite(v) for k, v in metrics.items()}, indent=2) + "\n")
    return metrics


def detail_boxes(case: SynthCase) -> list[tuple[int, int, int]]:
    """Square boxes (x0, y0, side) in pixels around what references should bring back: the
    person's marks, then both eyes (clipped to the image)."""
    size = case.size
    margin = float(case.mark_radii.max(initial=0.0)) + 4.0
    boxes = []
    for points, pad in ((case.marks, margin), (case.eye_centers, 3.0 * case.iris_radius)):
        if len(points) == 0:
            continue
        lo, hi = points.min(axis=0) - pad, points.max(axis=0) + pad
        side = int(min(size, max(16.0, float((hi - lo).max()))))
        centre = (lo + hi) / 2
        x0, y0 = (int(np.clip(round(c - side / 2), 0, size - side)) for c in centre)
        boxes.append((x0, y0, side))
    return boxes


def zoom(image: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """The box's pixels enlarged to the image's size with nearest-neighbour (no smoothing that
    would hide or invent detail)."""
    x0, y0, side = box
    crop = image[y0:y0 + side, x0:x0 + side]
    index = np.arange(image.shape[0]) * side // image.shape[0]
    return np.ascontiguousarray(crop[index][:, index])


def _finite(value):
    return None if isinstance(value, float) and not np.isfinite(value) else value


def summary(metrics: dict) -> str:
    """A few lines saying what the demo shows."""
    def pct(v):
        return "n/a" if v is None or not np.isfinite(v) else f"{v:.0%}"

    return (f"held-out person {metrics['identity']} of world {metrics['world_seed']}, {metrics['preset']} degradation, "
            f"{metrics['refs']} reference(s), {metrics['image_size']} px\n"
            f"  identity similarity to the ground truth: blind {metrics['id_sim_blind']:.3f} -> with references "
            f"{metrics['id_sim_refs']:.3f} (degraded input {metrics['id_sim_degraded']:.3f})\n"
            f"  PSNR: blind {metrics['psnr_blind']:.2f} dB, with references {metrics['psnr_refs']:.2f} dB\n"
            f"  marks present: degraded {pct(metrics['marks_present_degraded'])}, blind "
            f"{pct(metrics['marks_present_blind'])}, with references {pct(metrics['marks_present_refs'])} "
            f"(of {metrics['marks']})\n"
            f"  done in {metrics['seconds']:.1f} s")
