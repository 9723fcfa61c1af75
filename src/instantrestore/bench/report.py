"""Write a benchmark's results: ``results.md`` (table + targets), ``results.json`` and ``grid.png``.

Every file is written atomically (temporary name in the same folder, then renamed).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from ..utils.files import atomic_path, atomic_write_text
from ..utils.images import read_provenance
from ..utils.outputs import json_with, png_with_provenance, recorded_by, starts_with
from .rows import RowResult, SynthResults

# column key -> (header, format)
TABLE_COLUMNS = (
    ("psnr", "PSNR↑", "{:.2f}"), ("ssim", "SSIM↑", "{:.3f}"), ("id_sim", "ID sim↑", "{:.3f}"),
    ("id_sim_other", "ID sim to other person", "{:.3f}"), ("mark_recovery", "marks present↑", "{:.0%}"),
    ("eye_color_error", "eye colour err↓", "{:.1f}"), ("attention_mass", "attn mass on correct region↑", "{:.3f}"),
    ("ms_per_image", "ms / image", "{:.0f}"),
)
GRID_COLUMNS = ("degraded", "blind", "1 ref", "4 refs", "4 wrong refs", "ground truth", "refs", "wrong person's refs")


def _cell(value: float | None, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)


def markdown_table(rows: list[RowResult]) -> str:
    """One Markdown table, settings first, sanity rows in italics."""
    header = "| setting | " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " |"
    lines = [header, "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for row in rows:
        name = row.name if row.kind == "setting" else f"*{row.name}*"
        cells = [_cell(getattr(row, key), fmt) for key, _, fmt in TABLE_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def targets_markdown(targets: list[dict]) -> str:
    """One bullet per target: PASS / MISS / not run, the target, its real numbers."""
    marks = {True: "PASS", False: "MISS", None: "not run"}
    return "".join(f"- **{marks[t['passed']]}** {t['target']}: {t['detail']}\n" for t in targets)


def results_markdown(results: SynthResults, command: str | None = None) -> str:
    """``results.md``: the settings in a sentence, the command if given, the table and the targets."""
    s = results.settings
    four = results.row("4 refs")
    chance = four.attention_chance if four else None
    text = (f"# Synthetic benchmark\n\n{s['identities']} held-out identities of world seed {s['world_seed']}, "
            f"{s['image_size']} px, degradation `{s['preset']}` (draw seed {s['degrade_seed']}); identity similarity "
            f"by the evaluation network; marks present = contrast >= {s['mark_threshold']:g} x the ground truth's; attention mass "
            f"within {s['attention_radius_tokens']:g} tokens, mean over {len(s['attention_layers'])} injected layers"
            + (f" (uniform attention would give {chance:.3f})" if chance else "")
            + f"; time: batch 1, reference encoding included, {s['torch_threads']} threads on {s['device']}.\n\n")
    if command:
        text += f"Command: `{command}`\n\n"
    text += markdown_table(results.rows) + "\n## Targets\n\n" + targets_markdown(results.targets)
    return text


def _label(image: np.ndarray, text: str, height: int = 14) -> np.ndarray:
    bar = np.full((height, image.shape[1], 3), 255, np.uint8)
    scale = 0.3 if image.shape[1] < 100 else 0.36
    cv2.putText(bar, text[:22], (2, height - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], 0)


def mosaic(images: tuple[np.ndarray, ...] | list[np.ndarray], size: int) -> np.ndarray:
    """Up to 4 images as a 2x2 mosaic of one ``size`` x ``size`` cell (blank where missing)."""
    half = size // 2
    cell = np.full((size, size, 3), 255, np.uint8)
    for k, image in enumerate(list(images)[:4]):
        small = cv2.resize(image, (half, half), interpolation=cv2.INTER_AREA)
        y, x = divmod(k, 2)
        cell[y * half:(y + 1) * half, x * half:(x + 1) * half] = small
    return cell


def comparison_grid(rows: list[dict], columns: tuple[str, ...] = GRID_COLUMNS) -> np.ndarray:
    """uint8 RGB grid: one row per identity, one labelled column per name (image lists become mosaics)."""
    if not rows:
        raise ValueError("no identities to draw")
    size = next(v for v in rows[0].values() if isinstance(v, np.ndarray)).shape[0]
    lines = []
    for row in rows:
        cells = []
        for name in columns:
            value = row.get(name)
            if value is None:
                image = np.full((size, size, 3), 255, np.uint8)
            elif isinstance(value, np.ndarray):
                image = value
            else:
                image = mosaic(value, size)
            cells.append(np.pad(_label(image, name), ((0, 2), (0, 2), (0, 0)), constant_values=255))
        lines.append(np.concatenate(cells, 1))
    return np.concatenate(lines, 0)


def write_png(path: Path, image: np.ndarray, provenance: str | None = None) -> None:
    """Write a uint8 (H, W, 3) RGB image as PNG, atomically; ``provenance``: the text it records
    (``utils.images.read_provenance`` reads it back)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: could not encode PNG")
    payload = data.tobytes() if provenance is None else png_with_provenance(data.tobytes(), provenance)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_results(results: SynthResults, out_dir: str | Path, command: str | None = None,
                  extra: dict | None = None) -> dict[str, Path]:
    """Write results.md, results.json (plus ``extra``, e.g. training timings) and grid.png into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "results.md", "json": out_dir / "results.json", "grid": out_dir / "grid.png"}
    data = results.to_json()
    if command:
        data["command"] = command
    if extra:
        data.update(extra)
    atomic_write_text(paths["json"], json.dumps(_json_safe(data), indent=2) + "\n")
    atomic_write_text(paths["md"], results_markdown(results, command))
    write_png(paths["grid"], comparison_grid(results.grid), provenance='{"command": "bench"}')
    return paths


# the files write_results writes and, for each, the check that recognises one a benchmark wrote before
# (a grid written before grids recorded it: no provenance, beside a benchmark's results.json)
RESULT_FILES = {"results.md": starts_with("# Synthetic benchmark"), "results.json": json_with("settings", "rows", "targets"),
                "grid.png": lambda p: recorded_by("bench")(p) or (read_provenance(p) is None and json_with(
                    "settings", "rows", "targets")(p.parent / "results.json"))}
