"""The picture of an evaluation: one row per pair, input / output / ground truth / references."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..utils.files import atomic_path, list_images
from ..utils.images import load_image
from ..utils.outputs import png_with_provenance
from .pairing import find_references


def write_grid(path: Path, sample: list[tuple[str, Path, Path]], refs_dir: Path | None, lq_dir: Path | None,
               cell: int = 192, n_refs: int = 2) -> None:
    """Grid PNG, one row per (stem, output, ground truth) of ``sample``: input (when ``lq_dir``) /
    output / ground truth / up to ``n_refs`` references."""
    titles = (["input"] if lq_dir else []) + ["output", "ground truth"] + \
             (["reference"] * n_refs if refs_dir else [])
    blank = np.full((cell, cell, 3), 255, np.uint8)

    def tile(p: Path | None) -> np.ndarray:
        if p is None or not p.is_file():
            return blank
        return cv2.resize(np.asarray(load_image(p)), (cell, cell), interpolation=cv2.INTER_AREA)

    header = np.full((28, cell * len(titles), 3), 255, np.uint8)
    for i, t in enumerate(titles):
        cv2.putText(header, t, (i * cell + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    rows = [header]
    for stem, pred, gt in sample:
        tiles = []
        if lq_dir:
            lq = [q for q in list_images(lq_dir) if q.stem == stem]
            tiles.append(tile(lq[0] if lq else None))
        tiles += [tile(pred), tile(gt)]
        if refs_dir:
            refs = find_references(refs_dir, stem)[:n_refs]
            tiles += [tile(r) for r in refs] + [blank] * (n_refs - len(refs))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"{path}: could not encode the grid")
        tmp.write_bytes(png_with_provenance(data.tobytes(), '{"command": "eval"}'))
