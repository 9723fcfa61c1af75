"""An image-to-image folder job: every image of a file or folder tree through one function, as PNG.

``transform_folder`` is what ``degrade`` runs (with eq. 9 as the function): the folder tree is
mirrored into the output folder, each output records the job's settings and its input's relative
path (its provenance, ``folder_jobs``), so a resumed run skips what is done and keeps, with a
warning, what was made otherwise. The function gets the input's relative path too, so a seeded
draw can depend on it and not on the order. Side files (``NAME.json``, e.g. landmarks) are copied
beside their output.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..utils.files import IMAGE_SUFFIXES, atomic_write_bytes, clean_stale_temporaries, ensure_not_input, list_images
from ..utils.images import ImageError, load_image
from . import folder_jobs
from .folder_jobs import JobPlan, Progress, as_recorded, check_recordable, no_progress, plan_outputs

logger = logging.getLogger(__name__)

Pair = tuple[Path, Path]  # (input image, output image)


def mirrored_outputs(src: Path, dst: Path, suffix: str = ".png") -> tuple[list[Pair], Path]:
    """(input, output) pairs and the folder inputs are named relative to. A folder ``src`` is
    searched recursively and mirrored into the folder ``dst`` (each output with ``suffix``); a file
    goes to ``dst`` when that has an image suffix, else into the folder ``dst``."""
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        if dst.resolve() == src.resolve() or dst.resolve().is_relative_to(src.resolve()):
            raise ValueError(f"OUT {dst} must lie outside the input folder {src}")
        pairs = [(p, dst / p.relative_to(src).with_suffix(suffix)) for p in list_images(src, recursive=True)]
        if not pairs:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {src}")
        clash = sorted({str(o) for _, o in pairs if sum(o == other for _, other in pairs) > 1})
        if clash:
            raise ValueError(f"{len(clash)} output(s) would come from two inputs that differ only in suffix: "
                             f"{clash[:3]}")
        return pairs, src
    if src.is_file():
        out = dst if dst.suffix.lower() in IMAGE_SUFFIXES else dst / f"{src.stem}{suffix}"
        check_recordable(out, "OUT")
        return [(src, out)], src.parent
    raise FileNotFoundError(f"{src}: no such file or folder")


@dataclass
class TransformResult:
    """What ``transform_folder`` did: the ``plan`` (outputs done before, kept, made now), how many
    outputs it ``written``, and the inputs that could not be read (``failed``: one message each)."""

    plan: JobPlan
    written: int = 0
    failed: list[str] = field(default_factory=list)


def transform_folder(src: Path, dst: Path, settings: dict, transform: Callable[[np.ndarray, str], np.ndarray],
                     overwrite: bool = False, side_suffix: str | None = ".json", progress: Progress = no_progress,
                     desc: str = "transform") -> TransformResult:
    """Write ``transform(image, relative_path)`` of every image of ``src`` (a file or a folder tree,
    ``mirrored_outputs``) into ``dst`` as PNG. Each output records ``settings`` and the input's
    relative path; outputs already made alike are skipped, others kept unless ``overwrite``. An
    unreadable input is listed in ``failed`` and the job goes on. ``side_suffix``: side files
    copied along (None: none)."""
    pairs, base = mirrored_outputs(src, dst)
    for path, out in pairs:
        ensure_not_input(out, [path])
    # a killed run (kill -9) leaves its temporary; nothing else would ever remove it
    for stale in clean_stale_temporaries(dst if Path(src).is_dir() else pairs[0][1].parent):
        logger.info("removed %s, left by an interrupted run", stale)
    names = [path.relative_to(base).as_posix() for path, _ in pairs]

    def side_files(item) -> list:
        """The side file copied beside an output, made alike when it holds the input's side file's bytes."""
        (path, out), _ = item
        source = path.with_suffix(side_suffix) if side_suffix else None
        if source is None or not source.is_file():
            return []
        copied = lambda copy: made_of[id(item)] if copy.read_bytes() == source.read_bytes() else None  # noqa: E731
        return [(out.with_suffix(side_suffix), copied)]

    items = list(zip(pairs, names))
    made = [{**settings, "input": name} for name in names]
    made_of = {id(item): as_recorded(m) for item, m in zip(items, made)}
    plan = plan_outputs(items, made, path=lambda item: item[0][1], overwrite=overwrite, side=side_files)
    result = TransformResult(plan)
    for ((path, out), name), made in progress(plan.todo, desc, "image"):
        try:
            image = np.asarray(load_image(path))
        except ImageError as exc:
            result.failed.append(str(exc))
            continue
        folder_jobs.write_image(transform(image, name), out, made)
        side = path.with_suffix(side_suffix) if side_suffix else None
        if side is not None and side.is_file():
            atomic_write_bytes(out.with_suffix(side_suffix), side.read_bytes())
        result.written += 1
    return result
