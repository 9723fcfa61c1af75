"""Folder jobs: one output per input, resumable, each output recording what made it.

Every folder job of the package (``restore`` on whole photos and on aligned crops, ``degrade``,
``align``, ``paste``; a new job, e.g. on video frames, the same way) follows these steps:

    job = plan_outputs(items, made, path=lambda item: item.image, overwrite=overwrite)
    for item, provenance in progress(job.todo, "restoring", "photo"):
        write_image(image, path, provenance)      # the image records what made it
    for line in job.kept_lines("restore", "made with another model or input"): log(line)

An output that is already there is *done* when it records the same provenance (and the job's
other files for it are there too), *other* when it records another one (another model, settings or
input) and *foreign* when it records none (a file the job did not write). Other and foreign files
are kept, never replaced without ``overwrite``. Provenance is a JSON dict stored in the image
(``utils.images.save_image``) and compared as it reads back from JSON, so tuples equal lists.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generic, Iterable, Sequence, TypeVar

import numpy as np
from PIL import Image

from ..utils.files import list_images
from ..utils.images import read_recorded_settings, save_image
from ..utils.outputs import (DONE, FOREIGN, OTHER, TODO, Reader, as_recorded, classify,  # noqa: F401 (the job API)
                             classify_files)

T = TypeVar("T")

# (items, description, unit) -> the items, iterated (a progress bar, or nothing shown)
Progress = Callable[[Sequence[T], str, str], Iterable[T]]
Log = Callable[[str], None]


def no_progress(items: Sequence[T], desc: str = "", unit: str = "") -> Iterable[T]:
    """The default ``Progress`` of the library's jobs: shows nothing."""
    return items


def progress_bar(items: Sequence[T], desc: str = "", unit: str = "it") -> Iterable[T]:
    """A ``Progress`` for front-ends: a tqdm bar on stderr (none for a single item)."""
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=len(items) < 2)


def no_log(line: str) -> None:
    """The default ``Log`` of the library's jobs: says nothing."""


def expand_inputs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given and the images of folders (sorted, not recursive), in order; FileNotFoundError
    for a missing path or a folder with no images."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise FileNotFoundError(f"{path}: folder has no images")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def output_stems(inputs: Sequence[Path], clashing: Callable[[Path], str], rename_all: bool = False) -> list[str]:
    """The output name (without suffix) of each input: its own stem, or ``clashing(input)`` where
    another input has the same stem (for every input as soon as two clash, with ``rename_all``).
    ValueError when two inputs would still get the same name."""
    counts = Counter(p.stem for p in inputs)
    renamed = rename_all and any(n > 1 for n in counts.values())
    stems = [clashing(p) if renamed or counts[p.stem] > 1 else p.stem for p in inputs]
    clashes = sorted(stem for stem, n in Counter(stems).items() if n > 1)
    if clashes:
        raise ValueError(f"several inputs would be written to the same output: {', '.join(clashes[:5])}; "
                         "rename them or run the folders one at a time")
    return stems


def provenance_text(made: dict) -> str:
    """The text an output records: ``made`` as JSON with sorted keys."""
    return json.dumps(made, sort_keys=True)


@dataclass
class JobPlan(Generic[T]):
    """What a (resumed) job does: ``todo`` (item, provenance) pairs, and the items it leaves:
    ``done`` (same provenance), ``other`` (made with another one) and ``foreign`` (an output there
    that the job did not write). ``path`` names an item's output, for messages; ``blocking``: the
    names of the files that decided an item's status, where they are not its ``path``."""

    path: Callable[[T], Path]
    todo: list[tuple[T, dict]] = field(default_factory=list)
    done: list[T] = field(default_factory=list)
    other: list[T] = field(default_factory=list)
    foreign: list[T] = field(default_factory=list)
    blocking: dict[int, list[str]] = field(default_factory=dict)

    def add(self, item: T, made: dict, status: str, files: Sequence[str] = ()) -> None:
        """Sort ``item`` by its ``classify`` status (``files``: the file names that decided it)."""
        if status == TODO:
            self.todo.append((item, made))
        else:
            {DONE: self.done, OTHER: self.other, FOREIGN: self.foreign}[status].append(item)
            if files:
                self.blocking[id(item)] = list(files)

    def names(self, status: str) -> list[str]:
        """The output file names of the items left as ``status`` (``OTHER``, ``FOREIGN`` or ``DONE``)."""
        items = {DONE: self.done, OTHER: self.other, FOREIGN: self.foreign}[status]
        return [name for item in items for name in self.blocking.get(id(item), [self.path(item).name])]

    @property
    def kept(self) -> int:
        """Outputs there already, left as they are: done, other and foreign."""
        return len(self.done) + len(self.other) + len(self.foreign)

    def kept_lines(self, command: str, other: str, redo: str = "redo them") -> list[str]:
        """Warnings on the outputs kept though not done: made otherwise (``other`` says how), or
        with no record of ``command`` making them."""
        return kept_lines(command, self.names(OTHER), self.names(FOREIGN), other, redo)


def plan_outputs(items: Sequence[T], made: Sequence[dict], path: Callable[[T], Path], overwrite: bool = False,
                 complete: Callable[[T], bool] | None = None,
                 side: Callable[[T], Sequence[tuple[Path, Reader]]] | None = None) -> JobPlan[T]:
    """Sort ``items`` (each with the provenance ``made`` it would get, output ``path(item)``) into
    what to make and what to leave, from the files already there (``classify``). ``side``: the
    other files the job writes for an item, each with how its provenance is read; they are judged
    like the output (``classify_files``: a file of the user's among them keeps the whole item).
    ``complete``: whether an item's other files are there (asked only of an output made alike)."""
    plan: JobPlan[T] = JobPlan(path=path)
    for item, provenance in zip(items, made, strict=True):
        files = [(path(item), read_recorded_settings), *(side(item) if side else ())]
        status, names = classify_files(files, provenance, overwrite)
        if status == DONE and complete is not None and not complete(item):
            status = TODO
        plan.add(item, provenance, status, names if names != [path(item).name] else ())
    return plan


RECORDABLE_SUFFIXES = (".png", ".jpg", ".jpeg")  # where save_image can store provenance (a text chunk, a comment)


def check_recordable(path: Path, flag: str = "--out") -> None:
    """Refuse an output image ``path`` whose format cannot record what made it (a later run could not
    tell it from a file of the user's): ValueError saying which suffixes can."""
    if path.suffix.lower() not in RECORDABLE_SUFFIXES:
        raise ValueError(f"{flag} {path}: a {path.suffix or 'suffix-less'} file cannot record what made it, so a "
                         f"re-run could not resume it; write {' or '.join(RECORDABLE_SUFFIXES[:2])}")


def write_image(image: Image.Image | np.ndarray, path: Path, made: dict | None = None, **options) -> None:
    """Write one output image atomically, recording ``made`` (None: records nothing); ``options``:
    Pillow's save options (``save_image``), e.g. JPEG quality, EXIF, colour profile."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    save_image(image, path, provenance=None if made is None else provenance_text(made), **options)


def _listed(names: list[str]) -> str:
    return f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"


def kept_lines(command: str, other: list[str], foreign: list[str], other_what: str, redo: str = "redo them"
               ) -> list[str]:
    """The warnings on the existing outputs a resumed job kept: ``other`` (made otherwise:
    ``other_what`` says how) and ``foreign`` (no record of ``command`` making them)."""
    lines = []
    if other:
        lines.append(f"warning: kept {len(other)} existing output(s) {other_what}: {_listed(other)}; pass "
                     f"--overwrite to {redo}")
    if foreign:
        lines.append(f"warning: kept {len(foreign)} existing file(s) with no record of {command} making them: "
                     f"{_listed(foreign)}; pass --overwrite to replace them")
    return lines


def skipped_line(count: int, label: str = "") -> str:
    """The line saying how many outputs a resumed job found done (``label``: which process)."""
    return f"skipping {count} existing outputs{label} (use --overwrite to redo them)"
