"""A folder of whole photos restored with a FaceRestorer: outputs, per-photo reports, resume, summary.

For each photo ``NAME.ext`` the job writes, in the output folder (each file atomically):

- ``NAME.png``: the photo with its faces restored and pasted back (PNG: the pixels outside the
  faces stay byte-identical to the input's). It records what made it (``provenance``).
- ``NAME.json``: the report: every face's box, matched person and similarity, the references
  used, the strength, whether it was restored with references, blind or kept, and what fell back
  and why; photo-level problems (no face found, unreadable).
- ``NAME_before_after.jpg`` (optional): the input and the result side by side.

A photo is skipped when its image and report exist and the image records the same model, album
and settings (``plan``); an image made otherwise, or not by this job, is kept and listed, never
replaced without ``overwrite``. Nothing here depends on which process restores which photo, so a
folder shared between processes (``sharding.py``) gives the same files as one process.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..generator.fingerprints import file_digest
from ..utils.files import atomic_write_text
from ..utils.images import ImageError, load_image, read_recorded_settings, save_image

BEFORE_AFTER_SUFFIX = "_before_after.jpg"


@dataclass(frozen=True)
class PhotoOutputs:
    """Where one photo's results go."""

    photo: Path
    image: Path
    report: Path
    before_after: Path


def output_paths(photos: list[Path], out: Path) -> list[PhotoOutputs]:
    """Output names for ``photos`` in the folder ``out``: ``NAME.png`` / ``NAME.json`` /
    ``NAME_before_after.jpg``; photos whose names clash (a.jpg, a.png, or one name in two input
    folders) are told apart by their folder and suffix. One photo and an ``out`` with a suffix (not
    a folder): the image goes there, the report beside it (``result.png`` -> ``result.json``)."""
    if out.suffix and not out.is_dir():
        if len(photos) != 1:
            raise ValueError(f"--out {out} looks like a file, but there are {len(photos)} photos; give a folder")
        return [PhotoOutputs(photos[0], out, out.with_suffix(".json"), out.with_name(out.stem + BEFORE_AFTER_SUFFIX))]
    stems = Counter(p.stem for p in photos)
    outputs = []
    for photo in photos:
        stem = photo.stem if stems[photo.stem] == 1 else f"{photo.parent.name}_{photo.stem}_{photo.suffix.lstrip('.')}"
        outputs.append(PhotoOutputs(photo, out / f"{stem}.png", out / f"{stem}.json",
                                    out / f"{stem}{BEFORE_AFTER_SUFFIX}"))
    names = Counter(o.image.name for o in outputs)
    clashes = sorted(name for name, n in names.items() if n > 1)
    if clashes:
        raise ValueError(f"several inputs would be written to the same output: {', '.join(clashes[:5])}; "
                         "rename them or restore the folders one at a time")
    return outputs


def provenance(model_id: str, album_key: str | None, settings: dict, photo: Path) -> dict:
    """What makes a restored photo: the model, the album (None: no album), the settings, the input."""
    return {"command": "restore", "mode": "photos", "model": model_id, "album": album_key,
            "settings": settings, "input": photo.name, "input_sha256": file_digest(photo)[:16]}


@dataclass
class Plan:
    """What a (resumed) job does: ``todo`` (outputs, provenance) pairs, and the photos it leaves:
    ``done`` (same provenance), ``other`` (made with another model, album, settings or input) and
    ``foreign`` (an image there that this job did not write)."""

    todo: list[tuple[PhotoOutputs, dict]] = field(default_factory=list)
    done: list[PhotoOutputs] = field(default_factory=list)
    other: list[PhotoOutputs] = field(default_factory=list)
    foreign: list[PhotoOutputs] = field(default_factory=list)


def plan(outputs: list[PhotoOutputs], made: list[dict], overwrite: bool = False, before_after: bool = False) -> Plan:
    """Sort photos into what to restore and what to leave, from the files already in the output folder.

    A photo is done when its image records ``made`` and its report (and, when asked for, its
    before/after image) exists; a missing report or before/after redoes the photo."""
    result = Plan()
    for o, prov in zip(outputs, made):
        if o.image.exists() and not overwrite:
            previous = read_recorded_settings(o.image)
            if previous is None:
                result.foreign.append(o)
                continue
            if previous != prov:
                result.other.append(o)
                continue
            if o.report.is_file() and (o.before_after.is_file() or not before_after):
                result.done.append(o)
                continue
        result.todo.append((o, prov))
    return result


def restore_photo(restorer, outputs: PhotoOutputs, made: dict, strength: float | str | None = None,
                  before_after: bool = False, seed: int = 0) -> dict:
    """Restore one photo with ``restorer`` (a ``FaceRestorer``) and write its outputs; returns the report
    written. An unreadable photo writes a report saying why and no image."""
    report = {"photo": str(outputs.photo), "output": outputs.image.name, "provenance": made}
    try:
        photo = np.asarray(load_image(outputs.photo))
    except ImageError as exc:
        report.update(photo_size=None, faces=[], problems=[f"unreadable: {exc}"], output=None)
        atomic_write_text(outputs.report, json.dumps(report, indent=1) + "\n")
        return report
    restored, faces = restorer.enhance(photo, seed=seed, strength=strength)
    report.update(faces.to_json())
    report["before_after"] = outputs.before_after.name if before_after else None
    # the image first: a report beside an image always describes that image
    save_image(Image.fromarray(restored), outputs.image, provenance=json.dumps(made, sort_keys=True))
    if before_after:
        save_image(Image.fromarray(np.concatenate([photo, restored], axis=1)), outputs.before_after)
    atomic_write_text(outputs.report, json.dumps(report, indent=1) + "\n")
    return report


@dataclass
class Summary:
    """Counts over the reports of a job: photos, faces found, restored with references / blind / kept,
    and every problem (photo-level, and faces kept because a step failed)."""

    photos: int = 0
    faces: int = 0
    references: int = 0
    blind: int = 0
    kept: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, report: dict) -> None:
        name = Path(report["photo"]).name
        self.photos += 1
        self.problems += [f"{name}: {line}" for line in report.get("problems", [])]
        for face in report.get("faces", []):
            self.faces += 1
            how = face.get("restored")
            if how == "references":
                self.references += 1
            elif how == "blind":
                self.blind += 1
            else:
                self.kept += 1
            fallback = face.get("fallback")
            if fallback and fallback.get("step") != "match":  # an unmatched face is a choice, not a failure
                self.problems.append(f"{name}#{face['index']}: {fallback['step']}: {fallback['reason']}")

    def line(self) -> str:
        problems = f"; {len(self.problems)} problem(s)" if self.problems else ""
        return (f"{self.photos} photo(s), {self.faces} face(s) found: {self.references} restored with references, "
                f"{self.blind} blind, {self.kept} kept{problems}")


def read_report(path: Path) -> dict | None:
    """A report this job wrote, or None (missing or not readable)."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and "photo" in report else None


def summarize(outputs: list[PhotoOutputs]) -> Summary:
    """The summary of a whole job from the reports on disk (so resumed and sharded runs count every photo)."""
    summary = Summary()
    for o in outputs:
        report = read_report(o.report)
        if report is not None and os.path.basename(str(report["photo"])) == o.photo.name:
            summary.add(report)
    return summary
