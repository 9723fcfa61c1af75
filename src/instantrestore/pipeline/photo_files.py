"""The files a whole-photo restore writes for one photo: their names, format and metadata.

For a photo ``NAME.ext`` (``STEM`` = ``NAME``, plus ``_SUFFIX`` with ``suffix``), in the output folder:

- ``STEM.png`` or ``STEM.jpg`` (``ext``: 'auto' follows the input, JPEG for a JPEG, else PNG): the
  photo with its faces restored. PNG keeps every pixel outside the faces byte-identical; JPEG
  re-encodes the whole photo (``JPEG_OPTIONS``: quality 95, no colour subsampling). The input's EXIF
  (orientation reset to 1: the pixels are upright already) and RGB colour profile are carried over.
- ``STEM.json`` (the report), ``STEM_before_after.jpg`` (optional, input and result side by side).
- with ``save_faces``, as GFPGAN does: ``cropped_faces/STEM_00.png`` (the aligned input crop of each
  face, index as in the report) and ``restored_faces/STEM_00.png`` (the restored crop, for each face
  restored). The report lists them (``face_files``), so a resumed job knows they belong to it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..utils.files import ensure_not_input, ensure_outside_inputs
from ..utils.images import JPEG_OPTIONS
from ..utils.photo_metadata import PhotoMetadata
from . import folder_jobs
from .folder_jobs import output_stems

BEFORE_AFTER_SUFFIX = "_before_after.jpg"
EXTENSIONS = ("auto", "png", "jpg")
FACE_FOLDERS = ("cropped_faces", "restored_faces")  # GFPGAN's names
JPEG_SUFFIXES = (".jpg", ".jpeg")
BOX_COLOURS = {True: (0, 255, 0), False: (255, 0, 0)}  # restored: green; kept as it was: red


@dataclass(frozen=True)
class PhotoOutputs:
    """Where one photo's results go (``face_file``: its --save-faces crops)."""

    photo: Path
    image: Path
    report: Path
    before_after: Path

    def face_file(self, folder: str, index: int) -> Path:
        """The crop of face ``index`` in ``folder`` (one of ``FACE_FOLDERS``)."""
        return self.image.parent / folder / f"{self.image.stem}_{index:02d}.png"

    def existing_face_files(self) -> list[Path]:
        """The files already in the face folders under this photo's names (any face index)."""
        name = re.compile(re.escape(self.image.stem) + r"_\d{2,}\.png")
        return sorted(path for folder in FACE_FOLDERS if (self.image.parent / folder).is_dir()
                      for path in (self.image.parent / folder).iterdir() if name.fullmatch(path.name))


def image_suffix(photo: Path, ext: str) -> str:
    """The suffix of the restored image of ``photo`` for ``--ext`` ``ext`` ('auto': the input's format)."""
    if ext not in EXTENSIONS:
        raise ValueError(f"--ext {ext}: choose one of {', '.join(EXTENSIONS)}")
    if ext == "auto":
        return ".jpg" if photo.suffix.lower() in JPEG_SUFFIXES else ".png"
    return f".{ext}"


def output_paths(photos: list[Path], out: Path, ext: str = "auto", suffix: str | None = None) -> list[PhotoOutputs]:
    """Output names for ``photos`` in the folder ``out``: ``STEM.png|jpg`` / ``STEM.json`` /
    ``STEM_before_after.jpg``, ``STEM`` = the photo's name (plus ``_suffix``); photos whose names clash
    (a.jpg, a.png, or one name in two input folders) are told apart by their folder and suffix. One
    photo and an ``out`` with a suffix (not a folder): the image goes there (its suffix says PNG or
    JPEG; ``ext`` must agree), the report beside it (``result.png`` -> ``result.json``)."""
    if suffix is not None and (not suffix or re.search(r"[\\/\0]", suffix)):
        raise ValueError(f"--suffix {suffix!r}: give a short text for the names (no slashes), e.g. --suffix restored")
    if out.suffix and not out.is_dir():
        if len(photos) != 1:
            raise ValueError(f"--out {out} looks like a file, but there are {len(photos)} photos; give a folder")
        if out.suffix.lower() not in (".png", *JPEG_SUFFIXES):
            raise ValueError(f"--out {out}: whole photos are written as PNG (every pixel outside the faces kept "
                             f"byte for byte) or JPEG (the whole photo re-encoded at quality {JPEG_OPTIONS['quality']});"
                             f" use --out {out.with_suffix('.png')} or {out.with_suffix('.jpg')}")
        wanted = image_suffix(photos[0], ext)
        if ext != "auto" and (wanted == ".png") != (out.suffix.lower() == ".png"):
            raise ValueError(f"--out {out} is a {out.suffix} file but --ext {ext} was asked for; "
                             f"use --out {out.with_suffix(wanted)}, or leave --ext out")
        if suffix is not None:
            raise ValueError(f"--suffix names the outputs in a folder; --out {out} names the file itself: "
                             "give --out a folder, or put the suffix in the name")
        return [PhotoOutputs(photos[0], out, out.with_suffix(".json"), out.with_name(out.stem + BEFORE_AFTER_SUFFIX))]
    stems = output_stems(photos, lambda p: f"{p.parent.name}_{p.stem}_{p.suffix.lstrip('.')}")
    tail = f"_{suffix}" if suffix else ""
    return [PhotoOutputs(photo, out / f"{stem}{tail}{image_suffix(photo, ext)}", out / f"{stem}{tail}.json",
                         out / f"{stem}{tail}{BEFORE_AFTER_SUFFIX}") for photo, stem in zip(photos, stems)]


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
        for path in (o.image, o.report, o.before_after, *o.existing_face_files()):
            ensure_not_input(path, photos)


def draw_boxes(image: np.ndarray, faces: Sequence[dict], photo_size: tuple[int, int]) -> np.ndarray:
    """``image`` with the box of every face of the report drawn on it (green: restored; red: kept).
    The boxes are in the input photo's pixels (``photo_size``: width, height), scaled to ``image``'s
    size (a result may be larger than its input)."""
    canvas = Image.fromarray(image)
    sx, sy = canvas.width / photo_size[0], canvas.height / photo_size[1]
    width = max(1, round(max(canvas.size) / 400))
    draw = ImageDraw.Draw(canvas)
    for face in faces:
        x0, y0, x1, y1 = face["box"]
        draw.rectangle((x0 * sx, y0 * sy, x1 * sx, y1 * sy), outline=BOX_COLOURS[face.get("restored") is not None],
                       width=width)
    return np.asarray(canvas)


def write_face_files(outputs: PhotoOutputs, crops: Sequence[tuple[np.ndarray, np.ndarray | None]], made: dict,
                     metadata: PhotoMetadata) -> list[str]:
    """Write the aligned crop and (when restored) the restored crop of each face; returns their paths
    relative to the output folder, for the report. Files of an earlier run of this photo under these
    names that this run does not write again (a face no longer found or restored) are removed: the
    folders then hold exactly what the report lists."""
    written = []
    for index, (crop, restored) in enumerate(crops):
        for folder, image in zip(FACE_FOLDERS, (crop, restored)):
            if image is not None:
                path = outputs.face_file(folder, index)
                path.parent.mkdir(parents=True, exist_ok=True)
                folder_jobs.write_image(np.ascontiguousarray(image), path, made, **metadata.save_options(exif=False))
                written.append(path)
    for stale in set(outputs.existing_face_files()) - set(written):
        recorded = folder_jobs.read_recorded_settings(stale)
        if recorded is not None and recorded.get("command") == made.get("command"):  # ours; a user's file stays
            stale.unlink()
    return [path.relative_to(outputs.image.parent).as_posix() for path in written]


def image_options(path: Path, metadata: PhotoMetadata, exif: bool = True) -> dict:
    """How an image of this job is saved at ``path``: JPEG quality for a JPEG, and the photo's metadata."""
    return {**(JPEG_OPTIONS if path.suffix.lower() in JPEG_SUFFIXES else {}), **metadata.save_options(exif)}
