"""The folder jobs of ``align`` and ``paste``: photos -> aligned crops + a JSON per photo, and
restored crops -> pasted back into those photos.

``align_folder`` writes, per photo ``NAME``, ``OUT/NAME_{i:02d}.png`` (one FFHQ-aligned crop per
face) and ``OUT/NAME.json`` (boxes, landmarks, the photo -> crop matrices). The JSON is align's
record of the photo: it is claimed (status ``writing``, the crop names planned) before any crop is
written, so a resumed run knows which files are its own; a photo whose record is complete at this
crop size is done; a JSON there that align did not write for that photo is never replaced
without ``overwrite``.

``paste_folder`` pastes ``RESTORED/<crop name>`` back into each photo ``align`` recorded and
writes ``OUT/NAME.png``, which records the restored crops that made it (``paste_provenance``):
a resumed run skips photos pasted alike and keeps, with a warning, one pasted from other crops
or settings, or not by paste (``folder_jobs``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..faces.align import align_photo
from ..faces.paste import paste_enlargement, paste_restored, too_small
from ..utils.files import (atomic_write_text, clean_stale_temporaries, ensure_not_input, ensure_outside_inputs,
                           list_images, refuse_foreign)
from ..utils.images import ImageError, load_image
from . import folder_jobs
from .folder_jobs import DONE, TODO, JobPlan, Progress, classify, no_progress, output_stems



def align_record(json_path: Path) -> dict | None:
    """The JSON ``align`` wrote at ``json_path``, or None when there is none (or it is not align's)."""
    try:
        record = json.loads(Path(json_path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "photo" in record and "status" in record else None


def _already_aligned(record: dict | None, photo: Path, out: Path, size: int) -> bool:
    """This photo's record is complete and every crop it lists is there at this size."""
    if record is None or record.get("status") not in ("ok", "no_face") or Path(record["photo"]) != photo:
        return False
    return all((out / face["crop"]).is_file() and face.get("crop_size") == size for face in record.get("faces", []))


@dataclass
class AlignResult:
    """What ``align_folder`` did: photos seen, faces aligned (with those of photos already done),
    photos ``skipped`` as done, and the photos with no face, tiny faces and errors (messages)."""

    photos: int = 0
    faces: int = 0
    skipped: int = 0
    no_face: list[str] = field(default_factory=list)
    tiny: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def align_folder(source: Path, out: Path, size: int = 512, max_side: int = 800, min_face: int = 64,
                 fallback: str = "cnn", largest_only: bool = False, overwrite: bool = False,
                 progress: Progress = no_progress) -> AlignResult:
    """Detect and align every face of the photo ``source`` (or of the photos of the folder
    ``source``) into the folder ``out``; see the module docstring for the files and the resume."""
    source, out = Path(source), Path(out)
    if source.is_dir():
        photos = list_images(source)
        if not photos:
            raise FileNotFoundError(f"{source}: no images found")
        ensure_outside_inputs(out, [source])
    elif source.is_file():
        photos = [source]
    else:
        raise FileNotFoundError(f"{source}: no such file or folder")
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out, recursive=False)
    # a.jpg and a.png in one folder must not overwrite each other's outputs
    out_stem = dict(zip(photos, output_stems(photos, lambda p: f"{p.stem}_{p.suffix.lstrip('.')}")))
    result = AlignResult()
    for photo in progress(photos, "align", "photo"):
        result.photos += 1
        json_path = out / f"{out_stem[photo]}.json"
        ensure_not_input(json_path, photos)
        previous = align_record(json_path)
        ours = previous is not None and Path(previous["photo"]) == photo
        # align records its provenance in the JSON, not in the crops: the photo the record is for
        recorded = {"photo": str(Path(previous["photo"]))} if previous is not None else None
        status = classify(json_path, {"photo": str(photo)}, overwrite,
                          complete=_already_aligned(previous, photo, out, size), read=lambda _: recorded)
        if status == DONE:
            result.skipped += 1
            result.faces += len(previous["faces"])
            continue
        if status != TODO:  # files align wrote for this photo may be replaced; anything else is the user's
            result.errors.append(f"{json_path} exists and was not written by align for {photo}; "
                                 "pass --overwrite or choose another OUT")
            continue
        owned = {f"{out_stem[photo]}_{i:02d}.png" for i in range(int(previous.get("planned", 0)) if ours else 0)}
        owned |= {face["crop"] for face in previous.get("faces", [])} if ours else set()
        record = {"photo": str(photo), "status": "ok", "faces": []}
        try:
            image = np.asarray(load_image(photo))
            record["photo_size"] = [image.shape[1], image.shape[0]]
            aligned_faces = align_photo(image, size, max_side=max_side, fallback=fallback, largest_only=largest_only)
            crop_paths = [out / f"{out_stem[photo]}_{idx:02d}.png" for idx in range(len(aligned_faces))]
            for path in crop_paths:
                ensure_not_input(path, photos)
            if not overwrite:
                refuse_foreign([p for p in crop_paths if p.name not in owned], f"align (for {photo.name})")
            # claim the crop names first, so an interrupted run's crops are known as ours on resume
            atomic_write_text(json_path, json.dumps({"photo": str(photo), "status": "writing",
                                                     "planned": len(aligned_faces), "faces": []}) + "\n")
            for idx, (aligned, crop_path) in enumerate(zip(aligned_faces, crop_paths)):
                folder_jobs.write_image(aligned.crop, crop_path)
                tiny = aligned.face.size < min_face
                record["faces"].append({"index": idx, "crop": crop_path.name, "tiny": tiny, **aligned.to_json()})
                if tiny:
                    result.tiny.append(f"{photo.name}#{idx} ({aligned.face.size:.0f} px)")
            result.faces += len(aligned_faces)
            if not aligned_faces:
                record["status"] = "no_face"
                result.no_face.append(photo.name)
        except FileExistsError as exc:
            result.errors.append(str(exc))
            continue
        except (ImageError, RuntimeError) as exc:  # RuntimeError: dlib on an image it cannot handle
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            error = str(exc) if isinstance(exc, ImageError) else \
                f"{photo}: face detection failed ({type(exc).__name__}: {lines[0] if lines else 'no message'})"
            record.update(status="error", error=error)
            result.errors.append(error)
        atomic_write_text(json_path, json.dumps(record, indent=1) + "\n")
    return result


def paste_provenance(record: dict, restored: Path, allow_small: bool = False) -> dict:
    """What a pasted photo is made of: the photo and each face's restored crop (path, side, content
    digest, whether it is pasted) or its absence; read from headers and bytes only, so resuming
    stays cheap."""
    faces = []
    for face in record["faces"]:
        crop = Path(restored) / face["crop"]
        entry: dict = {"crop": str(crop.resolve()), "present": crop.is_file()}
        if entry["present"]:
            entry["sha256"] = hashlib.sha256(crop.read_bytes()).hexdigest()[:16]
            try:
                with Image.open(crop) as im:
                    entry["size"] = list(im.size)
            except OSError:
                entry["size"] = None
            # pasted, or refused as too small (what allow_small changes)
            entry["pasted"] = bool(entry["size"]) and (
                allow_small or not too_small(np.asarray(face["matrix"], float), face["crop_size"], entry["size"][0]))
        faces.append(entry)
    return {"command": "paste", "photo": str(Path(record["photo"]).resolve()), "faces": faces}


@dataclass
class PasteResult:
    """What ``paste_folder`` did: the ``records`` found, the ``plan`` (photos pasted before, kept,
    pasted now), ``photos`` written now, faces ``pasted``, faces with no restored crop (``missing``),
    crops far smaller than the aligned crop (``small``: pasted only with ``allow_small``) and the
    JSON files or photos that could not be used (``problems``: one message each, naming the file)."""

    records: int
    plan: JobPlan
    photos: int = 0
    pasted: int = 0
    missing: list[str] = field(default_factory=list)
    small: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def record_problem(record: dict | None, path: Path) -> str | None:
    """Why the JSON at ``path`` cannot be pasted from (None: it can, or it is a photo with no face):
    not align's, an unfinished or failed photo, or a face entry with missing fields or a crop name
    that is a path (``../x.png`` would read a file outside the restored folder)."""
    if record is None:
        return f"{path}: not a record of `instantrestore align` (broken JSON or another file)"
    status = record.get("status")
    if status == "writing":
        return f"{path}: align was interrupted on this photo; run align again first"
    if status == "error":
        return f"{path}: align could not read the photo ({record.get('error', 'no reason recorded')})"
    if status != "ok" or not isinstance(record.get("faces"), list):
        return None if status == "no_face" else f"{path}: unknown status {status!r} (not written by align?)"
    for face in record["faces"]:
        if not isinstance(face, dict) or not {"crop", "matrix", "crop_size"} <= set(face):
            return f"{path}: a face entry without crop, matrix and crop_size (not written by align?)"
        crop = str(face["crop"])
        if not crop or crop in (".", "..") or Path(crop).name != crop or "\\" in crop:
            return f"{path}: crop {crop!r} is not a file name in the restored folder; refused"
        if np.asarray(face["matrix"], dtype=object).shape != (2, 3):
            return f"{path}: the matrix of {crop} is not 2x3"
    return None


def paste_folder(aligned: Path, restored: Path, out: Path, overwrite: bool = False, allow_small: bool = False,
                 progress: Progress = no_progress) -> PasteResult:
    """Paste the restored crops of ``restored`` into the photos ``align`` recorded in ``aligned``,
    writing ``out/NAME.png`` per photo; a face without a restored crop keeps its pixels. A JSON or a
    photo that cannot be used is listed in ``problems`` and the job goes on."""
    aligned, restored, out = Path(aligned), Path(restored), Path(out)
    records = sorted(aligned.glob("*.json"))
    if not records:
        raise FileNotFoundError(f"{aligned}: no JSON files from `instantrestore align`")
    ensure_outside_inputs(out, [aligned, restored])
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out, recursive=False)
    plan: JobPlan = JobPlan(path=lambda item: item[1])
    result = PasteResult(len(records), plan)
    for record_path in records:
        record = align_record(record_path)
        problem = record_problem(record, record_path)
        if problem:
            result.problems.append(problem)
        elif record.get("status") == "ok":
            out_path = out / f"{record_path.stem}.png"
            made = paste_provenance(record, restored, allow_small)
            plan.add((record, out_path), made, classify(out_path, made, overwrite))
    for (record, out_path), made in progress(plan.todo, "paste", "photo"):
        try:
            _paste_one(record, restored, out_path, made, allow_small, result)
        except (ImageError, ValueError) as exc:  # one photo's problem never costs the others
            result.problems.append(f"{out_path.stem}: {exc}")
    return result


def _paste_one(record: dict, restored: Path, out_path: Path, made: dict, allow_small: bool,
               result: PasteResult) -> None:
    """Paste one photo's restored crops and write it (counted in ``result``)."""
    crops, matrices, crop_sizes, small = [], [], [], []
    for face in record["faces"]:
        crop_path = restored / face["crop"]
        if not crop_path.is_file():
            result.missing.append(face["crop"])
            continue
        crop = np.asarray(load_image(crop_path))
        if crop.shape[0] != crop.shape[1]:
            raise ValueError(f"{crop_path}: restored crops must be square, got {crop.shape[1]}x{crop.shape[0]}")
        matrix = np.array(face["matrix"], dtype=np.float64)
        if too_small(matrix, int(face["crop_size"]), crop.shape[0]):  # the rule of `restore` (faces.paste)
            times = paste_enlargement(matrix, int(face["crop_size"]), crop.shape[0])
            small.append(f"{crop_path.name} ({crop.shape[0]} px for a face of {crop.shape[0] * times:.0f} px: "
                         f"enlarged {times:.1f}x)")
            if not allow_small:
                continue
        crops.append(crop)
        matrices.append(matrix)
        crop_sizes.append(int(face["crop_size"]))
    photo_path = Path(record["photo"])
    ensure_not_input(out_path, [photo_path])
    image = np.asarray(load_image(photo_path))
    folder_jobs.write_image(paste_restored(image, crops, matrices, crop_sizes), out_path, made)
    result.small += small
    result.photos += 1
    result.pasted += len(crops)
