"""Prepare an identity-folder dataset for training (``instantrestore prepare-data``).

Finds every image of the layouts ``folders.identity_images`` reads (plain ``person/*.jpg``,
FFHQ-Ref style; ``person/references/*`` of CelebRef-HQ; ``person/cropped_images/*``; the test
layout), checks each (``prepare_checks``: unreadable, too small, not square, no face, several
faces, duplicates within and across people) and writes dlib's 68 landmarks (``dense``: then
mediapipe's 478) as the side file ``<stem>.json`` beside each usable image. It never writes an
image of the dataset: with ``align_to`` it writes FFHQ-aligned crops of any photos, with their
side files, into that folder instead (a new dataset). ``ROOT/prepared.json`` records what was
found and which images training leaves out (``manifest``). Re-running is cheap: an image whose
SHA-256 matches its record is not read again.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..utils.files import clean_stale_temporaries, ensure_outside_inputs, file_digest
from ..utils.images import ImageError, load_image, save_image
from .folders import identity_images
from .landmark_files import landmarks_path, read_side_file, write_landmarks
from .manifest import PREPARE_COMMAND, manifest_path, read_manifest, write_manifest
from .prepare_checks import (DUPLICATE_BITS, NAME_CLASH, REASON_KINDS, ImageFacts, difference_hash, face_problem,
                             find_duplicates, image_problem, reason_kind)
from .prepare_faces import FaceFit, check_landmark_kind, fit_aligned_crop, fit_and_align

FLUSH_SECONDS = 60.0  # the manifest is rewritten this often during a run, so a killed run resumes


@dataclass(frozen=True)
class PrepareSettings:
    """landmarks: "dlib" (68 points) or "dense" (68 + mediapipe's 478); min_size: shortest side (or,
    aligning, the aligned face's side) in pixels below which an image is left out; align_to: a
    folder for aligned crops of the photos (None: the images are aligned crops already); size: the
    side of those crops; duplicate_bits: hash distance at or under which two photos are one;
    overwrite: redo every image, also replacing side files prepare-data did not write."""

    landmarks: str = "dlib"
    min_size: int = 256
    align_to: str | None = None
    size: int = 512
    duplicate_bits: int = DUPLICATE_BITS
    overwrite: bool = False


@dataclass
class PrepareReport:
    """What a run did. root: the dataset to train on (DATA, or the ``align_to`` folder);
    written / up_to_date / kept: side files written, found current, and left as they were (not
    prepare-data's; --overwrite replaces them); excluded: {image key: reason}; thin_people: people
    left with fewer than 2 usable images (training skips them)."""

    root: Path
    manifest: Path
    images: int = 0
    people: int = 0
    written: int = 0
    up_to_date: int = 0
    kept: int = 0
    excluded: dict[str, str] = field(default_factory=dict)
    thin_people: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """Excluded images per reason kind, in ``REASON_KINDS`` order."""
        found = Counter(reason_kind(r) for r in self.excluded.values())
        return {kind: found[kind] for kind in REASON_KINDS if found[kind]}


@dataclass(frozen=True)
class _Item:
    person: str
    source: Path  # the file read
    dest: Path    # the image training reads (the source itself, or its aligned crop)
    key: str      # dest relative to the dataset root, POSIX style


def list_items(root: Path, out_root: Path, aligning: bool) -> list[_Item]:
    """Every image of every identity folder under ``root``, in dataset order."""
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in identity_images(folder):
            rel = path.relative_to(root)
            dest = out_root / rel.with_suffix(".png") if aligning else path
            items.append(_Item(folder.name, path, dest, dest.relative_to(out_root).as_posix()))
    return items


def _check_places(root: Path, out_root: Path, items: list[_Item], aligning: bool) -> None:
    if not items:
        raise ValueError(f"{root}: no images found; expected one folder per person (person/*.jpg, "
                         "person/references/*, person/cropped_images/*)")
    if aligning:
        ensure_outside_inputs(out_root, [root])
        if out_root.is_dir() and any(out_root.iterdir()) and not manifest_path(out_root).is_file():
            raise FileExistsError(f"--align {out_root} exists and was not written by prepare-data; choose an "
                                  "empty or new folder")
        return
    folders = sorted({item.source.parent for item in items} | {root})
    # a folder marked read-only for everyone stays so, even for root (whom os.access lets write)
    locked = [str(f) for f in folders if not os.access(f, os.W_OK) or not f.stat().st_mode & 0o222]
    if locked:
        raise PermissionError(f"cannot write landmark side files beside the images: {', '.join(locked[:3])}"
                              f"{' ...' if len(locked) > 3 else ''} not writable. Copy the dataset somewhere "
                              "writable, or write aligned copies with --align OUT")


def _measure(item: _Item, sha: str, s: PrepareSettings) -> tuple[ImageFacts, FaceFit | None]:
    """Read the image (and, when it passes the reading checks, find its faces)."""
    try:
        image = load_image(item.source)
    except (ImageError, OSError) as exc:
        return ImageFacts(sha, unreadable=str(exc).removeprefix(f"{item.source}: ")), None
    facts = ImageFacts(sha, image.width, image.height, difference_hash(image))
    if image_problem(facts, s.min_size, s.align_to is not None):
        return facts, None
    pixels, dense = np.asarray(image), s.landmarks == "dense"
    fit = fit_and_align(pixels, s.size, dense) if s.align_to else fit_aligned_crop(pixels, dense)
    facts.faces, facts.face_size, facts.detector = fit.faces, fit.face_size, fit.detector
    return facts, fit


def _cached(item: _Item, sha: str, side: dict | None, previous: dict | None) -> ImageFacts | None:
    for data in ((side or {}).get("prepared"), previous):
        facts = ImageFacts.from_json(data)
        if facts is not None and facts.sha256 == sha:
            return facts
    return None


def _prepare_one(item: _Item, s: PrepareSettings, source: str, previous: dict | None) -> tuple[str, dict]:
    """-> (status: written | up_to_date | kept | excluded, manifest entry)."""
    aligning = s.align_to is not None
    try:
        sha = file_digest(item.source)
    except OSError as exc:
        return "excluded", {"person": item.person, "reason": f"unreadable: {exc}"}
    side_path = landmarks_path(item.dest)
    side = read_side_file(side_path)
    facts = None if s.overwrite else _cached(item, sha, side, previous)
    fit = None
    if facts is None:
        facts, fit = _measure(item, sha, s)
    problem = image_problem(facts, s.min_size, aligning)
    if problem is None and facts.faces is None:  # read before under other settings, never searched
        facts, fit = _measure(item, sha, s)
    problem = problem or face_problem(facts, s.min_size, aligning)
    entry = {"person": item.person, **facts.to_json(), **({"source": item.source.as_posix()} if aligning else {})}
    if problem:
        return "excluded", {**entry, "reason": problem}
    ours = (side or {}).get("prepared")
    if side is not None and not s.overwrite:
        if isinstance(ours, dict) and ours.get("sha256") == sha and ours.get("source") == source \
                and item.dest.is_file():
            return "up_to_date", entry
        if ours is None and not aligning:
            return "kept", entry  # landmarks someone else wrote: theirs to replace (--overwrite)
    if fit is None:
        facts, fit = _measure(item, sha, s)
    if aligning:
        save_image(Image.fromarray(fit.image), item.dest)
    height, width = fit.image.shape[:2]
    write_landmarks(side_path, fit.landmarks, width, height,
                    extra={"prepared": {**facts.to_json(), "source": source}})
    return "written", entry


def prepare_dataset(root: str | os.PathLike, settings: PrepareSettings = PrepareSettings(),
                    progress: bool = True) -> PrepareReport:
    """Check every image of the identity folders under ``root`` and write their landmark side
    files (see the module docs); returns what was done. Resumable: run it again after adding
    images, after a crash, or with other settings."""
    from tqdm import tqdm

    started = time.perf_counter()
    s = settings
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset {root}: not a folder")
    if s.min_size < 1 or s.size < 16:
        raise ValueError(f"need --min-size >= 1 and --size >= 16, got {s.min_size} and {s.size}")
    source = check_landmark_kind(s.landmarks)
    out_root = Path(s.align_to) if s.align_to else root
    items = list_items(root, out_root, s.align_to is not None)
    _check_places(root, out_root, items, s.align_to is not None)
    out_root.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_root)
    old = (read_manifest(out_root) or {}).get("images") or {}
    entries: dict[str, dict] = dict(old)
    report = PrepareReport(out_root, manifest_path(out_root), images=len(items),
                           people=len({i.person for i in items}))
    settings_record = {"command": PREPARE_COMMAND, "source_root": os.path.abspath(root), "landmarks": source,
                       "min_size": s.min_size, "align": s.align_to is not None, "size": s.size,
                       "duplicate_bits": s.duplicate_bits}
    seen: dict[Path, str] = {}
    last_flush = time.monotonic()
    bar = tqdm(items, desc="prepare-data", unit="image", disable=not progress, dynamic_ncols=True)
    for item in bar:
        side = landmarks_path(item.dest)
        if side in seen:
            status, entry = "excluded", {"person": item.person,
                                         "reason": f"{NAME_CLASH}: {seen[side]} has the same name, and so the same "
                                                   f"side file {side.name}"}
        else:
            seen[side] = item.key
            status, entry = _prepare_one(item, s, source, old.get(item.key))
        entries[item.key] = entry
        if status == "excluded":
            report.excluded[item.key] = entry["reason"]
        else:
            setattr(report, status, getattr(report, status) + 1)
        bar.set_postfix(written=report.written, left_out=len(report.excluded), refresh=False)
        if time.monotonic() - last_flush > FLUSH_SECONDS:
            write_manifest(out_root, {"settings": settings_record, "complete": False, "images": entries})
            last_flush = time.monotonic()
    bar.close()
    usable = [(i.person, i.key, entries[i.key]["dhash"]) for i in items
              if i.key not in report.excluded and entries[i.key].get("dhash")]
    for key, reason in find_duplicates(usable, s.duplicate_bits).items():
        report.excluded[key] = entries[key]["reason"] = reason
    keys = {i.key for i in items}
    left = Counter(i.person for i in items if i.key not in report.excluded)
    report.thin_people = sorted({i.person for i in items if left[i.person] < 2})
    report.seconds = time.perf_counter() - started
    write_manifest(out_root, {"settings": settings_record, "complete": True,
                              "summary": {"images": report.images, "people": report.people,
                                          "excluded": report.counts(), "thin_people": report.thin_people},
                              "excluded": {k: report.excluded[k] for k in sorted(report.excluded)},
                              "images": {k: v for k, v in entries.items() if k in keys}})
    return report
