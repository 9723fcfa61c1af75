"""The evaluation report behind ``instantrestore eval``: pair files, measure, write four outputs.

Outputs in ``out``: ``per_image.csv`` (one row per pair), ``summary.json`` (mean/std/n per
metric, skipped metrics with reasons, unpaired and unreadable files, conventions),
``table.md`` (one row, mean ± std, in the style of the tables of "Reference-Guided Identity
Preserving Face Restoration") and ``grid.png`` (``grid.write_grid``: input / output / ground
truth / references for a sample of pairs). Which files pair up is ``pairing``'s job.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..faces.landmark_distance import ald_eye, ald_mouth, l2_landmark_distance
from ..faces.verify import has_face
from ..utils.files import atomic_write_text, ensure_outside_inputs
from ..utils.images import read_provenance
from ..utils.outputs import claim_outputs, json_with, recorded_by, starts_with
from ..utils.images import ImageError, load_image, uint8_to_tensor
from .grid import write_grid
from .image import LPIPS, MetricUnavailable, ms_ssim, psnr, ssim
from .pairing import find_references, pair_files

if TYPE_CHECKING:
    from ..faces.identity import FaceEmbedder

# name -> (table header, higher is better)
METRICS = {
    "psnr": ("PSNR↑", True), "ssim": ("SSIM↑", True), "ms_ssim": ("MS-SSIM↑", True), "lpips": ("LPIPS↓", False),
    "ids": ("IDS↑", True), "ids_ref": ("IDS(REF)↑", True), "l2_ld": ("L2-LD↓", False),
    "ald_e": ("ALD-e↓", False), "ald_m": ("ALD-m↓", False), "fid": ("FID↓", False),
}
# Metrics named so a report can say why they are absent rather than silently omit them.
NOT_AVAILABLE = {
    "fid": "FID needs Inception-v3 weights (pt_inception-2015-12-05), which are not on this machine; "
           "not implemented in this package",
}
CONVENTIONS = {
    "psnr": "RGB, data range 255, float pixels (x+1)*127.5, equals skimage.metrics.peak_signal_noise_ratio",
    "ssim": "RGB mean of per-channel SSIM, data range 255, 7x7 uniform window, equals skimage structural_similarity",
    "ms_ssim": "pytorch-msssim, RGB, data range 255, 11x11 Gaussian sigma 1.5, 5 scales",
    "lpips": "lpips package, AlexNet backbone, inputs in [-1, 1]",
    "ids": "cosine similarity of identity embeddings, output vs ground truth",
    "ids_ref": "cosine similarity of identity embeddings, output vs the first reference (sorted by name), as in "
               "Reference-Guided Identity Preserving Face Restoration",
    "l2_ld": "mean Euclidean distance of the 68 dlib landmarks, pixels at the evaluated size",
    "ald_e": "affine landmark distance (HonestFace eq. 14) on eyes+brows (22 points), pixels^2",
    "ald_m": "affine landmark distance (HonestFace eq. 14) on the outer mouth (12 points), pixels^2",
}


def _stats(values: list[float]) -> dict:
    """mean/std/n of the finite values; ``n_infinite`` counts the rest (PSNR of identical images)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0, "n_infinite": len(values)}
    arr = np.array(finite)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": len(finite),
            "n_infinite": len(values) - len(finite)}


def _legacy_grid(path: Path) -> bool:
    """A grid eval wrote before grids recorded it: no provenance, beside eval's summary.json."""
    return read_provenance(path) is None and json_with("n_pairs", "n_measured", "unpaired")(path.parent / "summary.json")


# the files eval writes in --out, each with the check that recognises one it wrote before
EVAL_OUTPUTS = {"per_image.csv": starts_with("name,pred,gt"), "summary.json": json_with("n_pairs", "n_measured", "unpaired"),
                "table.md": starts_with("| Method |"), "grid.png": lambda p: recorded_by("eval")(p) or _legacy_grid(p)}


def evaluate(pred_dir: Path, gt_dir: Path, out_dir: Path, refs_dir: Path | None = None, lq_dir: Path | None = None,
             metrics: list[str] | None = None, embedder: FaceEmbedder | None = None,
             timings: dict[str, float] | None = None, grid: int = 4, label: str | None = None, progress: bool = True,
             faceless: str = "warn", overwrite: bool = False) -> dict:
    """Measure every pair and write the four outputs; returns the summary dict (also in summary.json).
    Outputs an earlier eval wrote are replaced; another file of those names is refused
    (FileExistsError, before anything is measured) unless ``overwrite``."""
    from tqdm import tqdm

    pred_dir, gt_dir, out_dir = Path(pred_dir), Path(gt_dir), Path(out_dir)
    inputs = [pred_dir, gt_dir] + ([Path(refs_dir)] if refs_dir else []) + ([Path(lq_dir)] if lq_dir else [])
    for d in inputs:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"{d}: no such folder")
    ensure_outside_inputs(out_dir, inputs)
    claim_outputs([out_dir / name for name in EVAL_OUTPUTS], list(EVAL_OUTPUTS.values()), "eval", overwrite)
    if faceless not in ("warn", "skip"):
        raise ValueError(f"faceless must be 'warn' or 'skip', not {faceless!r}")
    metrics = list(metrics or METRICS)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    skipped: dict[str, str] = {m: NOT_AVAILABLE[m] for m in metrics if m in NOT_AVAILABLE}
    lpips_fn = None
    if "lpips" in metrics:
        try:
            lpips_fn = LPIPS()
        except MetricUnavailable as exc:
            skipped["lpips"] = str(exc)
    if "ids_ref" in metrics and refs_dir is None:
        skipped["ids_ref"] = "no --refs folder given"
    if {"ids", "ids_ref"} & set(metrics) and embedder is None:
        from ..faces.identity import DlibEmbedder
        embedder = DlibEmbedder()
    active = [m for m in metrics if m not in skipped]
    pixel_metrics = {m: fn for m, fn in (("psnr", psnr), ("ssim", ssim), ("ms_ssim", ms_ssim), ("lpips", lpips_fn))
                     if m in active}
    landmark_metrics = {m: fn for m, fn in (("l2_ld", l2_landmark_distance), ("ald_e", ald_eye), ("ald_m", ald_mouth))
                        if m in active}
    if landmark_metrics:
        from ..faces.detect import aligned_landmarks

    pairing = pair_files(pred_dir, gt_dir)
    rows, problems, no_face = [], [], []
    missed: dict[str, list[str]] = {}  # metric -> why it could not measure an image (the others still do)
    for stem, pred_path, gt_path in tqdm(pairing.pairs, desc="eval", unit="image", disable=not progress):
        try:
            pred, gt = np.asarray(load_image(pred_path)), np.asarray(load_image(gt_path))
        except ImageError as exc:
            problems.append({"name": stem, "reason": str(exc)})
            continue
        if pred.shape != gt.shape:
            problems.append({"name": stem, "reason": f"size differs: output {pred.shape[1]}x{pred.shape[0]}, "
                                                     f"ground truth {gt.shape[1]}x{gt.shape[0]}"})
            continue
        row: dict = {"name": stem, "pred": pred_path.name, "gt": gt_path.name}
        p, g = uint8_to_tensor(pred), uint8_to_tensor(gt)
        for name, fn in pixel_metrics.items():
            try:
                row[name] = float(fn(p, g)[0])
            except ValueError as exc:  # e.g. MS-SSIM on the 128 px faces of the tiny model: this metric alone
                missed.setdefault(name, []).append(f"{stem}: {exc}")
        try:
            gt_face = True
            if "ids" in active or "ids_ref" in active:
                # identity scores of a faceless image are numbers about nothing: always said, and with
                # faceless="skip" left out (a synthetic-world embedder's faces are not dlib's, hence not the default)
                gt_face, pred_face = has_face(gt), has_face(pred)
                no_face += [f"{folder}/{path.name}" for folder, path, ok in
                            (("gt", gt_path, gt_face), ("pred", pred_path, pred_face)) if not ok]
            if ("ids" in active or "ids_ref" in active) and not gt_face and faceless == "skip":
                row.update({m: float("nan") for m in ("ids", "ids_ref") if m in active})
                if "ids_ref" in active:
                    row["ref"] = ""
            elif "ids" in active or "ids_ref" in active:
                refs = find_references(refs_dir, stem) if "ids_ref" in active else []
                batch = [p, g] + ([uint8_to_tensor(np.asarray(load_image(refs[0])))] if refs else [])
                sizes = {tuple(t.shape[-2:]) for t in batch}
                if len(sizes) > 1:  # embedders take one size per batch
                    batch = [torch.nn.functional.interpolate(t, size=p.shape[-2:], mode="area") for t in batch]
                emb = embedder.embed(torch.cat(batch))
                if "ids" in active:
                    row["ids"] = float(emb[0] @ emb[1])
                if "ids_ref" in active:
                    row["ids_ref"] = float(emb[0] @ emb[2]) if refs else float("nan")
                    row["ref"] = refs[0].name if refs else ""
            try:
                lp, lg = (aligned_landmarks(pred), aligned_landmarks(gt)) if landmark_metrics else (None, None)
                for name, fn in landmark_metrics.items():
                    row[name] = float(fn(lp, lg)[0])
            except ValueError as exc:  # no landmarks found: the other metrics still count
                for name in landmark_metrics:
                    missed.setdefault(name, []).append(f"{stem}: {exc}")
        except (ValueError, ImageError) as exc:
            problems.append({"name": stem, "reason": str(exc)})
            continue
        if timings is not None and stem in timings:
            row["seconds"] = timings[stem]
        rows.append(row)

    for name, reasons in missed.items():  # a metric that measured nothing is skipped, saying why
        if not any(name in r for r in rows):
            skipped[name] = f"{reasons[0].split(': ', 1)[1]} ({len(reasons)} image(s))"
            active.remove(name)
    columns = ["name", "pred", "gt"] + [m for m in active] + (["ref"] if "ids_ref" in active else []) + \
              (["seconds"] if any("seconds" in r for r in rows) else [])
    stats = {m: _stats([r[m] for r in rows if m in r]) for m in active}
    if any("seconds" in r for r in rows):
        stats["seconds"] = _stats([r["seconds"] for r in rows if "seconds" in r])
    summary = {
        "label": label or pred_dir.name, "pred": str(pred_dir), "gt": str(gt_dir),
        "refs": str(refs_dir) if refs_dir else None, "lq": str(lq_dir) if lq_dir else None,
        "n_pairs": len(pairing.pairs), "n_measured": len(rows), "metrics": stats, "skipped": skipped,
        "unpaired": {"pred_only": pairing.pred_only, "gt_only": pairing.gt_only, "ambiguous": pairing.ambiguous},
        "problems": problems,
        "no_face": no_face,
        "embedder": {"name": embedder.name, "threshold": embedder.threshold} if embedder is not None else None,
        "conventions": {m: CONVENTIONS[m] for m in active},
        "notes": _notes(embedder, active) + [f"{name} not measured on {len(why)} image(s), e.g. {why[0]}"
                                             for name, why in missed.items() if name in active],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / "per_image.csv", rows, columns)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1, allow_nan=False, default=str) + "\n")
    atomic_write_text(out_dir / "table.md", markdown_table(summary))
    sample = [(stem, p, g) for stem, p, g in pairing.pairs if stem in {r["name"] for r in rows}][:grid]
    summary["grid"] = None
    if sample:
        write_grid(out_dir / "grid.png", sample, refs_dir, lq_dir)
        summary["grid"] = "grid.png"
    return summary


def _notes(embedder: FaceEmbedder | None, active: list[str]) -> list[str]:
    notes = []
    if embedder is not None and {"ids", "ids_ref"} & set(active) and embedder.name == "dlib":
        notes.append("IDS uses dlib's 128-d embedder, not ArcFace as in the papers; for comparable numbers "
                     "pass an ArcFace model with --embedder onnx:PATH")
    return notes


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4f}"


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (_fmt(v) if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def markdown_table(summary: dict) -> str:
    """One-row Markdown table, mean ± std per metric, plus notes on skipped metrics and unpaired files."""
    names = [m for m in summary["metrics"]]
    headers = [METRICS[m][0] if m in METRICS else "s/image" for m in names]
    cells = []
    for m in names:
        s = summary["metrics"][m]
        cells.append("n/a" if s["mean"] is None else f"{s['mean']:.4f} ± {s['std']:.4f}")
    lines = [f"| Method | {' | '.join(headers)} |", "|---|" + "---|" * len(headers),
             f"| {summary['label']} | {' | '.join(cells)} |", "",
             f"{summary['n_measured']} of {summary['n_pairs']} paired images measured"
             + (f"; identity embedder {summary['embedder']['name']}" if summary.get("embedder") else "") + "."]
    for note in summary.get("notes", []):
        lines.append(f"- note: {note}")
    for m, reason in summary["skipped"].items():
        lines.append(f"- {m} skipped: {reason}")
    unpaired = summary["unpaired"]
    for key, text in (("pred_only", "outputs without ground truth"), ("gt_only", "ground truths without output"),
                      ("ambiguous", "ambiguous names (several files per stem)")):
        if unpaired[key]:
            lines.append(f"- {text}: {', '.join(unpaired[key])}")
    for p in summary["problems"]:
        lines.append(f"- not measured: {p['name']}: {p['reason']}")
    return "\n".join(lines) + "\n"
