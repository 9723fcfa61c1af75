"""What ``instantrestore eval`` measures against what: output/ground-truth pairs by file stem, each
pair's references, and per-image timings from a CSV."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..utils.files import list_images


@dataclass
class Pairing:
    """Pairs (stem, output, ground truth) and the files that found no partner, by folder."""

    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)  # (stem, pred, gt)
    pred_only: list[str] = field(default_factory=list)
    gt_only: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)


def pair_files(pred_dir: Path, gt_dir: Path) -> Pairing:
    """Pair images by file stem (``a.png`` with ``a.jpg``); everything else is listed, never dropped."""
    def by_stem(paths: list[Path]) -> dict[str, list[Path]]:
        table: dict[str, list[Path]] = {}
        for p in paths:
            table.setdefault(p.stem, []).append(p)
        return table
    pred, gt = by_stem(list_images(pred_dir)), by_stem(list_images(gt_dir))
    out = Pairing()
    for stem in sorted(set(pred) | set(gt)):
        if len(pred.get(stem, [])) > 1 or len(gt.get(stem, [])) > 1:
            out.ambiguous += [str(p) for p in pred.get(stem, []) + gt.get(stem, [])]
        elif stem in pred and stem in gt:
            out.pairs.append((stem, pred[stem][0], gt[stem][0]))
        elif stem in pred:
            out.pred_only.append(pred[stem][0].name)
        else:
            out.gt_only.append(gt[stem][0].name)
    return out


def find_references(refs_dir: Path | None, stem: str) -> list[Path]:
    """References of one image: ``refs_dir/<stem>/*`` if that folder exists, else the images directly in ``refs_dir``."""
    if refs_dir is None:
        return []
    own = refs_dir / stem
    return list_images(own) if own.is_dir() else list_images(refs_dir)


def read_timings(path: str | os.PathLike) -> dict[str, float]:
    """Per-image seconds from a CSV with columns ``name,seconds`` (name = file stem or file name)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"name", "seconds"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: timings CSV needs columns name,seconds, got {reader.fieldnames}")
        return {Path(r["name"]).stem: float(r["seconds"]) for r in reader}
