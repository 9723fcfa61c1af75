"""A folder of whole photos restored with a FaceRestorer: outputs, per-photo reports, resume, summary.

For each photo ``NAME.ext`` the job writes, in the output folder (each file atomically):

- ``NAME.png``: the photo, ``--upscale`` times larger, its faces restored and pasted back (outside the
  faces: the background upsampler's output; upscale 1: byte-identical to the input's). It records what made it.
- ``NAME.json``: the report: every face's box, matched person and similarity, the references
  used, the strength, whether it was restored with references, blind or kept, and what fell back
  and why; photo-level problems (no face found, unreadable).
- ``NAME_before_after.jpg`` (optional): the input and the result side by side.

Each of the three records what made it (the image and the before/after in the file, the report
in its ``provenance``). A photo is skipped when all its files are there made with the same model,
album, settings and input (``plan``, over ``folder_jobs``); when any of them was made otherwise, or
is not this job's (a ``NAME.json`` of the user's), all are kept and listed, never replaced without
``overwrite``. Nothing here depends on which process restores which photo, so a folder shared between
processes (``sharding.py``) gives the same files as one process. ``run_photo_job`` is the whole job.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..generator.fingerprints import file_digest, model_fingerprint
from ..utils.files import atomic_write_text, clean_stale_temporaries, ensure_not_input, ensure_outside_inputs
from ..utils.images import ImageError, load_image, read_recorded_settings
from . import folder_jobs
from .face_paste import PasteOptions, side_by_side
from .folder_jobs import (JobPlan, Log, Progress, expand_inputs, no_log, no_progress, output_stems, plan_outputs,
                          skipped_line)
from .strength import parse_strength

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
        if out.suffix.lower() != ".png":
            raise ValueError(f"--out {out}: whole photos are written as PNG, so that every pixel outside the faces "
                             f"stays byte for byte as it was; a {out.suffix} file would re-encode the whole photo "
                             f"(lossily for JPEG). Use --out {out.with_suffix('.png')} and convert the result if you "
                             "need another format")
        return [PhotoOutputs(photos[0], out, out.with_suffix(".json"), out.with_name(out.stem + BEFORE_AFTER_SUFFIX))]
    stems = output_stems(photos, lambda p: f"{p.parent.name}_{p.stem}_{p.suffix.lstrip('.')}")
    return [PhotoOutputs(photo, out / f"{stem}.png", out / f"{stem}.json", out / f"{stem}{BEFORE_AFTER_SUFFIX}")
            for photo, stem in zip(photos, stems)]


def provenance(model_id: str, album_key: str | None, settings: dict, photo: Path) -> dict:
    """What makes a restored photo: the model, the album (None: no album), the settings, the input."""
    return {"command": "restore", "mode": "photos", "model": model_id, "album": album_key,
            "settings": settings, "input": photo.name, "input_sha256": file_digest(photo)[:16]}


def check_outputs(outputs: list[PhotoOutputs], out: Path, folders: Sequence[Path]) -> None:
    """Refuse outputs that would land in an input ``folders`` (or replace an input photo): a folder
    ``out`` must lie outside them; one photo written to a file may sit beside them, not among them."""
    if outputs and outputs[0].image == out:
        where = out.resolve().parent
        for folder in folders:
            if folder.resolve() == where or folder.resolve() in where.parents:
                raise ValueError(f"--out {out} lies inside the input folder {folder}; choose an --out outside it")
    else:
        ensure_outside_inputs(out, list(folders))
    photos = [o.photo for o in outputs]
    for o in outputs:
        for path in (o.image, o.report, o.before_after):
            ensure_not_input(path, photos)


def report_provenance(path: Path) -> dict | None:
    """The provenance a report of this job records, or None (not one of its reports)."""
    report = read_report(path)
    made = None if report is None else report.get("provenance")
    return made if isinstance(made, dict) else None


def _side_files(o: PhotoOutputs, before_after: bool) -> list[tuple[Path, folder_jobs.Reader]]:
    """The report and (when asked for) the before/after of a photo, with how each records what made it.
    A before/after written before it recorded anything counts as made alike when the report, made
    alike, names it."""
    def before_after_provenance(path: Path) -> dict | None:
        report = read_report(o.report)
        legacy = report is not None and report.get("before_after") == path.name
        return read_recorded_settings(path) or (report_provenance(o.report) if legacy else None)
    return [(o.report, report_provenance)] + ([(o.before_after, before_after_provenance)] if before_after else [])


def plan(outputs: list[PhotoOutputs], made: list[dict], overwrite: bool = False,
         before_after: bool = False) -> JobPlan[PhotoOutputs]:
    """Sort photos into what to restore and what to leave, from the files already in the output folder.

    A photo is done when its image and report (and, when asked for, its before/after image) record
    ``made``; a missing one redoes the photo; one recording another provenance or none (a file of
    the user's) keeps the photo's files as they are."""
    return plan_outputs(outputs, made, path=lambda o: o.image, overwrite=overwrite,
                        side=lambda o: _side_files(o, before_after))


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
    folder_jobs.write_image(restored, outputs.image, made)
    if before_after:  # the input enlarged to the result's size beside it
        folder_jobs.write_image(side_by_side(photo, restored), outputs.before_after, made)
    atomic_write_text(outputs.report, json.dumps(report, indent=1) + "\n")
    return report


@dataclass
class Summary:
    """Counts over the reports of a job: photos, faces found, restored with references / blind / kept,
    and every problem (photo-level, and faces kept because a step failed)."""

    photos: int = 0
    unreadable: int = 0
    faces: int = 0
    references: int = 0
    blind: int = 0
    kept: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, report: dict) -> None:
        name = Path(report["photo"]).name
        self.photos += 1
        self.unreadable += "output" in report and report["output"] is None
        self.problems += [f"{name}: {line}" for line in report.get("problems", [])]
        for face in report.get("faces", []):
            self.faces += 1
            how = face.get("restored")
            self.references += how == "references"
            self.blind += how == "blind"
            self.kept += how not in ("references", "blind")
            fallback = face.get("fallback")
            if fallback and fallback.get("step") != "match":  # an unmatched face is a choice, not a failure
                self.problems.append(f"{name}#{face['index']}: {fallback['step']}: {fallback['reason']}")

    def line(self) -> str:
        problems = f"; {len(self.problems)} problem(s)" if self.problems else ""
        unreadable = f" ({self.unreadable} unreadable, not written)" if self.unreadable else ""
        return (f"{self.photos} photo(s){unreadable}, {self.faces} face(s) found: {self.references} restored with references, "
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


@dataclass(frozen=True)
class PhotoJob:
    """A restore run over whole photos: ``inputs`` (photos or folders of photos) into ``out`` (a
    folder, or a file for one photo), each face matched to a person of the ``album`` folder (None:
    no album, every face follows ``unknown``) and restored with that person's best ``k`` references
    at ``strength``. verify: 'off' | 'warn' | 'strict' (a face whose person's references disagree
    is kept); embedder: the identity model (``faces.identity.load_embedder``). only_person: restore only
    faces matching this album person (alone); every other face is kept as it is (``unknown``: 'keep')."""

    inputs: Sequence[str | os.PathLike]
    out: Path
    album: Path | None = None
    embedder: str = "dlib"
    k: int = 4
    unknown: str = "blind"
    strength: float | str = 1.0
    verify: str = "warn"
    overwrite: bool = False
    before_after: bool = False
    only_person: str | None = None
    paste: PasteOptions = PasteOptions()  # output size, background upsampler, colour fix, mask


@dataclass
class PhotoJobResult:
    """What ``run_photo_job`` did in this process: the job's ``outputs``, this process's ``plan``,
    the faces found in the photos it restored, how many photos were unreadable, and the
    ``summary`` of the whole job (from every report on disk; None but in the main process)."""

    outputs: list[PhotoOutputs]
    plan: JobPlan[PhotoOutputs]
    faces: int = 0
    unreadable: int = 0
    summary: Summary | None = None


def run_photo_job(job: PhotoJob, load_model: Callable[[str | None], Any], log: Log = no_log,
                  progress: Progress = no_progress) -> PhotoJobResult:
    """Restore the photos of ``job``: check the outputs, open the album, load the model with ``load_model(device)``
    (the device this process is given under ``accelerate launch``, else None), restore this process's share of the
    photos not done yet, and summarise the job. ``log`` gets the lines worth telling (skipped, kept and why, cost)."""
    from ..faces.identity import load_embedder
    from ..faces.verify import ReferenceWarning
    from .album import Album, require_person
    from .face_restorer import FaceRestorer
    from .sharding import current_shard

    strength, photos, out = parse_strength(job.strength), expand_inputs(job.inputs), Path(job.out)
    outputs = output_paths(photos, out)
    folders = [Path(p) for p in job.inputs if Path(p).is_dir()] + ([Path(job.album)] if job.album else [])
    check_outputs(outputs, out, folders)
    album = None
    if job.album:
        try:
            album = Album(job.album, embedder=load_embedder(job.embedder))
        except ImportError as exc:  # an optional extra is missing: say which
            raise ValueError(str(exc)) from exc
    if job.only_person is not None:  # refused before the model loads
        require_person(album, job.only_person, "--only-person")
    shard = current_shard()
    clean_stale_temporaries(outputs[0].image.parent, recursive=False)
    paste, model = job.paste.build(shard.device), load_model(shard.device)  # a bad upsampler file: before the model
    if album is None:
        log(f"no --album: every face is {'restored blind' if job.unknown == 'blind' else 'kept'}")
    elif shard.is_main and job.verify != "off":
        for line in album.problems():
            log(f"warning: album: {line}")
    unknown = "keep" if job.only_person is not None else job.unknown  # anyone else: kept as they are
    settings = {"k": job.k, "unknown": unknown, "strength": strength, "strict": job.verify == "strict",
                "embedder": album.embedder.name if album else None, "crop_size": album.crop_size if album else 512,
                **paste.settings(), **({} if job.only_person is None else {"only_person": job.only_person})}
    restorer = FaceRestorer(model, album=album, k=job.k, unknown=unknown, strict=settings["strict"],
                            strength=strength, only_person=job.only_person, paste=paste)
    mine = shard.take(outputs)
    model_id, album_key = model_fingerprint(model), album.key() if album else None
    result = PhotoJobResult(outputs, plan(mine, [provenance(model_id, album_key, settings, o.photo) for o in mine],
                                          job.overwrite, job.before_after))
    if result.plan.done:
        log(skipped_line(len(result.plan.done), shard.label()))
    for line in result.plan.kept_lines("restore", "made with another model, album, settings or input",
                                       "redo them with this one"):
        log(line)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceWarning)  # the album's problems were told once above
        for o, made in progress(result.plan.todo, f"restoring{shard.label()}", "photo"):
            report = restore_photo(restorer, o, made, before_after=job.before_after)
            result.faces += len(report["faces"])
            result.unreadable += report["output"] is None
    if result.plan.todo:
        per = (time.perf_counter() - start) / max(result.faces, 1)
        failed = f" ({result.unreadable} unreadable: only their report written)" if result.unreadable else ""
        log(f"restored {len(result.plan.todo) - result.unreadable} photo(s){shard.label()}{failed}, {per:.3f} s "
            f"per face on {model.device}")
    if album is not None:  # what the album cost this run: nothing once its caches are warm
        did = [f"{what} {', '.join(sorted(counts))}" for what, counts in
               (("aligned references of", album.prepared), ("encoded references of", album.encodes)) if counts]
        log(f"album{shard.label()}: {'; '.join(did) or 'all references from the cache'}")
    shard.wait()
    if shard.is_main:
        result.summary = summarize(outputs)
    return result
