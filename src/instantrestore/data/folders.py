"""Identity folders on disk: which images each identity has, and loading them square.

Layouts read by ``scan_identity_folders`` (one sub-folder per identity):
  root/<identity>/*.{png,jpg,...}                       plain identity folders
  root/<identity>/cropped_images/*                      official InstantRestore training layout
  root/<identity>/{degraded.png, gt.png, conditioning/*} test layout (gt + conditioning are used)
  root/<identity>/references/*                          DMDNet/CelebRef-HQ examples (a degraded_* photo
                                                        beside it has no clean version and is ignored)
Landmarks of an image, if any, are in its side file (``landmark_files``); ``square_landmarks``
maps them onto ``load_square``'s output.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..utils.files import list_images
from ..utils.images import load_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentityRecord:
    """One identity: its name, its usable image paths (sorted) and, when the scan read them, each
    image's (width, height) as stored (before any EXIF rotation)."""

    name: str
    images: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class FolderSurvey:
    """What ``survey_identity_folders`` found: usable identities, the names of those with too few
    images (``thin``), and counts of unreadable and manifest-excluded images left out."""

    records: list[IdentityRecord]
    thin: list[str] = field(default_factory=list)
    unreadable: int = 0
    excluded: int = 0


def identity_images(folder: Path) -> list[Path]:
    """The images of one identity folder in whichever layout it uses (see module docs)."""
    for sub in ("cropped_images", "references"):
        if (folder / sub).is_dir():
            return list_images(folder / sub)
    if (folder / "gt.png").is_file():
        cond = folder / "conditioning"
        return [folder / "gt.png"] + (list_images(cond) if cond.is_dir() else [])
    return list_images(folder)


def _readable(path: Path) -> tuple[str | None, tuple[int, int]]:
    """(None, (width, height)) if PIL can identify the file, else (the reason, (0, 0))."""
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
        return None, size
    except Exception as exc:  # PIL raises many types for broken files
        return f"{type(exc).__name__}: {exc}", (0, 0)


def survey_identity_folders(root: str | os.PathLike, min_images: int = 2, verify: bool = True,
                            exclude: Collection[str | os.PathLike] = ()) -> FolderSurvey:
    """Identities under ``root`` with at least ``min_images`` readable images, sorted by name,
    and what was left out. ``verify`` reads every file (and records its size); ``exclude``:
    image paths to leave out (compared as ``os.path.abspath``), e.g. ``manifest.excluded_images``.
    Raises FileNotFoundError when ``root`` is missing."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")
    left_out = {os.path.abspath(p) for p in exclude}
    records, skipped, unreadable, excluded = [], [], 0, 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images, sizes = [], []
        for path in identity_images(folder):
            if left_out and os.path.abspath(path) in left_out:
                excluded += 1
                continue
            reason, size = _readable(path) if verify else (None, (0, 0))
            if reason:
                unreadable += 1
                log.warning("unreadable image left out: %s (%s)", path, reason)
            else:
                images.append(path)
                sizes.append(size)
        if len(images) < min_images:
            skipped.append(folder.name)
        else:
            records.append(IdentityRecord(folder.name, tuple(images), tuple(sizes) if verify else ()))
    return FolderSurvey(records, skipped, unreadable, excluded)


def scan_identity_folders(root: str | os.PathLike, min_images: int = 2, verify: bool = True,
                          exclude: Collection[str | os.PathLike] = ()) -> list[IdentityRecord]:
    """Identities under ``root`` with at least ``min_images`` readable images, sorted by name.

    Unreadable files are logged by path and left out, as are the ``exclude`` paths; identities
    that end up with fewer than ``min_images`` images are skipped with a count in the log. Raises
    FileNotFoundError when ``root`` is missing and ValueError when no identity is usable.
    """
    return checked_records(root, survey_identity_folders(root, min_images, verify, exclude), min_images)


def checked_records(root: str | os.PathLike, survey: FolderSurvey, min_images: int = 2) -> list[IdentityRecord]:
    """The identities of a survey, with what it left out in the log; ValueError when there are none."""
    records, skipped, unreadable = survey.records, survey.thin, survey.unreadable
    if skipped:
        log.warning("skipped %d identit%s with fewer than %d usable images (a target needs another photo of the "
                    "same person as its reference): %s", len(skipped), "y" if len(skipped) == 1 else "ies", min_images,
                    ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""))
    if unreadable:
        log.warning("%d unreadable image(s) left out under %s", unreadable, root)
    if survey.excluded:
        log.info("%d image(s) left out as prepare-data's record asks (%s/prepared.json)", survey.excluded, root)
    if not records:
        raise ValueError(f"{root}: no identity folder has {min_images} or more readable images "
                         f"({len(skipped)} skipped, {unreadable} unreadable files, {survey.excluded} left out "
                         "by prepare-data)")
    return records


def load_square(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Load an image, centre-crop it square and resize to ``size``.

    Returns (uint8 (size, size, 3) RGB, (width, height) of the file as loaded).
    """
    im = load_image(path)
    orig = im.size
    side = min(orig)
    x0, y0 = (im.width - side) // 2, (im.height - side) // 2
    if orig != (side, side):
        im = im.crop((x0, y0, x0 + side, y0 + side))
    if side != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8), orig


def square_landmarks(points: np.ndarray, recorded: tuple[int, int], actual: tuple[int, int], size: int) -> np.ndarray:
    """Map landmarks of an image recorded at ``recorded`` (w, h) onto ``load_square``'s output.

    Pixel centres are at integer coordinates; the file may have been resized since the
    landmarks were written (then ``actual`` differs from ``recorded``).
    """
    (rw, rh), (aw, ah) = recorded, actual
    pts = (np.asarray(points, np.float64) + 0.5) * (aw / rw, ah / rh)
    side = min(aw, ah)
    pts = (pts - ((aw - side) // 2, (ah - side) // 2)) * (size / side) - 0.5
    return pts.astype(np.float32)

