"""Run logs: ``metrics.jsonl`` (one JSON object per logged step), TensorBoard scalars when the
``tensorboard`` package is installed, and validation grids as PNG."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..utils.files import atomic_write_text
from ..utils.images import save_image, tensor_to_uint8

log = logging.getLogger(__name__)
METRICS_NAME = "metrics.jsonl"
HELD_OUT_NAME = "held_out.txt"


class MetricsLogger:
    """Appends metric rows to ``OUT/metrics.jsonl`` and, when available, TensorBoard (``OUT/tb``).

    ``resume_step``: rows logged after this step by a killed run are dropped, so the file reads
    as one uninterrupted run.
    """

    def __init__(self, out: Path, resume_step: int = 0, tensorboard: bool = True):
        self.path = out / METRICS_NAME
        out.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("TensorBoard logging off: the 'tensorboard' package is not installed "
                         "(pip install tensorboard); scalars are still in %s", self.path)
            else:
                self.writer = SummaryWriter(str(out / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def log(self, step: int, values: dict[str, Any]) -> None:
        row = {"step": int(step), **{k: _plain(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key if "/" in key else f"train/{key}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_held_out(out: Path, people: list[str]) -> Path:
    """``OUT/held_out.txt``: the validation people, one name a line (never trained on, so the ones
    to evaluate on)."""
    path = out / HELD_OUT_NAME
    atomic_write_text(path, "".join(f"{name}\n" for name in people))
    return path


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    """The rows of ``OUT/metrics.jsonl``."""
    path = Path(out) / METRICS_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def validation_grid(lq: torch.Tensor, output: torch.Tensor, hq: torch.Tensor, refs: torch.Tensor | None = None,
                    ref_mask: torch.Tensor | None = None, pad: int = 2) -> Image.Image:
    """One column per sample; rows: input, output, ground truth, then each reference slot.

    lq/output/hq: [B, 3, H, W] in [-1, 1]; refs: [B, N, 3, H, W]; padded slots (ref_mask False) are grey.
    """
    rows = [tensor_to_uint8(lq), tensor_to_uint8(output), tensor_to_uint8(hq)]
    if refs is not None:
        mask = torch.ones(refs.shape[:2], dtype=torch.bool) if ref_mask is None else ref_mask.cpu().bool()
        for k in range(refs.shape[1]):
            row = tensor_to_uint8(refs[:, k])
            row[~mask[:, k].numpy()] = 128
            rows.append(row)
    b, h, w, _ = rows[0].shape
    canvas = np.full((len(rows) * (h + pad) + pad, b * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c in range(b):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[y:y + h, x:x + w] = row[c]
    return Image.fromarray(canvas)


def save_grid(image: Image.Image, path: Path) -> None:
    """Write the grid PNG atomically."""
    save_image(image, path)
