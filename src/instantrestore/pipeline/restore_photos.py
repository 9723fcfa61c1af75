"""A folder of whole photos restored with a FaceRestorer: outputs, per-photo reports, resume, summary.

For each photo ``NAME.ext`` the job writes, in the output folder (each file atomically; names,
formats and metadata: ``photo_files``):

- ``NAME.png`` (or ``.jpg``): the photo, ``--upscale`` times larger, its faces restored and pasted back
  (outside the faces: the background upsampler's output; upscale 1 and PNG: byte-identical to the
  input's). It records what made it (``provenance``).
- ``NAME.json``: the report: every face's box, matched person and similarity, the references
  used, the strength, whether it was restored with references, blind or kept, and what fell back
  and why; photo-level problems (no face found, unreadable).
- ``NAME_before_after.jpg`` (optional): the input and the result side by side.
- ``cropped_faces/NAME_00.png``, ``restored_faces/NAME_00.png`` (optional): each face's crops.

Each records what made it (the images in the file, the report in its ``provenance``). A photo is skipped when all its files are there made with the same model,
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..generator.fingerprints import file_digest, model_fingerprint
from ..utils.files import atomic_write_text, clean_stale_temporaries
from ..utils.images import ImageError, load_image, read_recorded_settings
from ..utils.photo_metadata import read_photo_metadata
from . import folder_jobs
from .face_paste import PasteOptions, side_by_side
from .folder_jobs import JobPlan, Log, Progress, expand_inputs, no_log, no_progress, plan_outputs, skipped_line
from .photo_files import (BEFORE_AFTER_SUFFIX, PhotoOutputs, check_outputs, draw_boxes,  # noqa: F401 (API)
                          image_options, output_paths, write_face_files)
from .photo_summary import Summary, read_report, restored_faces, summarize  # noqa: F401 (API)
from .strength import parse_strength


def provenance(model_id: str, album_key: str | None, settings: dict, photo: Path) -> dict:
    """What makes a restored photo: the model, the album (None: no album), the settings, the input."""
    return {"command": "restore", "mode": "photos", "model": model_id, "album": album_key,
            "settings": settings, "input": photo.name, "input_sha256": file_digest(photo)[:16]}


def report_provenance(path: Path) -> dict | None:
    """The provenance a report of this job records, or None (not one of its reports)."""
    report = read_report(path)
    made = None if report is None else report.get("provenance")
    return made if isinstance(made, dict) else None


def _side_files(o: PhotoOutputs, before_after: bool, save_faces: bool) -> list[tuple[Path, folder_jobs.Reader]]:
    """The report and (when asked for) the before/after and face crops of a photo, with how each records
    what made it: the crops the report lists (a missing one redoes the photo) and every file under the
    photo's crop names (one of the user's keeps the photo). A before/after written before it recorded
    anything counts as made alike when the report, made alike, names it."""
    def before_after_provenance(path: Path) -> dict | None:
        report = read_report(o.report)
        legacy = report is not None and report.get("before_after") == path.name
        return read_recorded_settings(path) or (report_provenance(o.report) if legacy else None)
    files = [(o.report, report_provenance)] + ([(o.before_after, before_after_provenance)] if before_after else [])
    if save_faces:
        listed = (read_report(o.report) or {}).get("face_files") or []
        crops = {*o.existing_face_files(), *(o.image.parent / name for name in listed if isinstance(name, str))}
        files += [(path, read_recorded_settings) for path in sorted(crops)]
    return files


def _complete(o: PhotoOutputs, save_faces: bool) -> bool:
    """Whether a photo's report describes its image (an --ext run may have named another) and, with
    ``save_faces``, lists its face crops (a run without them wrote none)."""
    report = read_report(o.report) or {}
    return report.get("output") in (o.image.name, None) and (not save_faces or report.get("face_files") is not None)


def plan(outputs: list[PhotoOutputs], made: list[dict], overwrite: bool = False,
         before_after: bool = False, save_faces: bool = False) -> JobPlan[PhotoOutputs]:
    """Sort photos into what to restore and what to leave, from the files already in the output folder.

    A photo is done when its image and report (and, when asked for, its before/after image and face
    crops) record ``made``; a missing one redoes the photo; one recording another provenance or none
    (a file of the user's) keeps the photo's files as they are."""
    return plan_outputs(outputs, made, path=lambda o: o.image, overwrite=overwrite,
                        side=lambda o: _side_files(o, before_after, save_faces),
                        complete=lambda o: _complete(o, save_faces))


def restore_photo(restorer, outputs: PhotoOutputs, made: dict, strength: float | str | None = None,
                  before_after: bool = False, seed: int = 0, save_faces: bool = False,
                  draw_box: bool = False) -> dict:
    """Restore one photo with ``restorer`` (a ``FaceRestorer``) and write its outputs (``photo_files``;
    ``save_faces``: each face's crops, ``draw_box``: the face boxes drawn on the result); returns the
    report written. An unreadable photo writes a report saying why and no image."""
    report = {"photo": str(outputs.photo), "output": outputs.image.name, "provenance": made}
    try:
        photo = np.asarray(load_image(outputs.photo))
    except ImageError as exc:
        report.update(photo_size=None, faces=[], problems=[f"unreadable: {exc}"], output=None)
        report.update(face_files=[] if save_faces else None)
        atomic_write_text(outputs.report, json.dumps(report, indent=1) + "\n")
        return report
    restored, faces = restorer.enhance(photo, seed=seed, strength=strength)
    report.update(faces.to_json())
    report["before_after"] = outputs.before_after.name if before_after else None
    if draw_box:
        restored = draw_boxes(restored, faces.faces, faces.photo_size)
    metadata = read_photo_metadata(outputs.photo)
    # the images first: a report beside an image always describes that image
    folder_jobs.write_image(restored, outputs.image, made, **image_options(outputs.image, metadata))
    if before_after:  # the input enlarged to the result's size beside it
        folder_jobs.write_image(side_by_side(photo, restored), outputs.before_after, made,
                                **image_options(outputs.before_after, metadata, exif=False))
    report["face_files"] = write_face_files(outputs, faces.crops, made, metadata) if save_faces else None
    atomic_write_text(outputs.report, json.dumps(report, indent=1) + "\n")
    return report


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
    # the photo's own files (``photo_files``), which faces, where the album's caches go (None: in the album)
    ext: str = "auto"
    suffix: str | None = None
    save_faces: bool = False
    draw_box: bool = False
    largest_face: bool = False
    cache_dir: Path | None = None
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
    restored: int = 0
    summary: Summary | None = None


def run_photo_job(job: PhotoJob, load_model: Callable[[str | None], Any], log: Log = no_log,
                  progress: Progress = no_progress) -> PhotoJobResult:
    """Restore the photos of ``job``: check the outputs, open the album, load the model with ``load_model(device)``
    (the device this process is given under ``accelerate launch``, else None), restore this process's share of the
    photos not done yet, and summarise the job. ``log`` gets the lines worth telling (skipped, kept and why, cost)."""
    from ..faces.verify import ReferenceWarning
    from .album import open_album, require_person
    from .face_restorer import FaceRestorer
    from .sharding import current_shard

    strength, photos, out = parse_strength(job.strength), expand_inputs(job.inputs), Path(job.out)
    outputs = output_paths(photos, out, job.ext, job.suffix)
    folders = [Path(p) for p in job.inputs if Path(p).is_dir()] + ([Path(job.album)] if job.album else [])
    check_outputs(outputs, out, folders)
    album = open_album(job.album, job.embedder, job.cache_dir)
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
    settings.update({name: True for name in ("draw_box", "largest_face") if getattr(job, name)})  # likewise
    restorer = FaceRestorer(model, album=album, k=job.k, unknown=unknown, strict=settings["strict"],
                            strength=strength, only_person=job.only_person, largest_face=job.largest_face,
                            paste=paste)
    mine = shard.take(outputs)
    model_id, album_key = model_fingerprint(model), album.key() if album else None
    result = PhotoJobResult(outputs, plan(mine, [provenance(model_id, album_key, settings, o.photo) for o in mine],
                                          job.overwrite, job.before_after, job.save_faces))
    if result.plan.done:
        log(skipped_line(len(result.plan.done), shard.label()))
    for line in result.plan.kept_lines("restore", "made with another model, album, settings or input",
                                       "redo them with this one"):
        log(line)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceWarning)  # the album's problems were told once above
        for o, made in progress(result.plan.todo, f"restoring{shard.label()}", "photo"):
            report = restore_photo(restorer, o, made, before_after=job.before_after, save_faces=job.save_faces,
                                   draw_box=job.draw_box)
            result.faces += len(report["faces"])
            result.unreadable += report["output"] is None
            result.restored += restored_faces(report) > 0
    if result.plan.todo:  # a photo counts as restored only when one of its faces was
        per = (time.perf_counter() - start) / max(result.faces, 1)
        failed = f", {result.unreadable} unreadable (only their report written)" if result.unreadable else ""
        written = len(result.plan.todo) - result.unreadable
        log(f"wrote {written} photo(s){shard.label()}: {result.restored} with faces restored, {written - result.restored}"
            f" with none (see their reports){failed}; {per:.3f} s per face on {model.device}")
    if album is not None:  # what the album cost this run: nothing once its caches are warm
        did = [f"{what} {', '.join(sorted(counts))}" for what, counts in
               (("aligned references of", album.prepared), ("encoded references of", album.encodes)) if counts]
        log(f"album{shard.label()}: {'; '.join(did) or 'all references from the cache'}")
    shard.wait()
    if shard.is_main:
        result.summary = summarize(outputs)
    return result
