"""Fixed, reproducible test sets in the test layout:

  out/<case>/gt.png                ground truth (size x size)
  out/<case>/degraded.png          gt degraded with a recorded, seeded draw of the preset
  out/<case>/conditioning/ref_NN.png  other photos of the same identity
  out/<case>/degradation.json      preset, parameters, seed and source files (written last)
  gt.json, conditioning/ref_NN.json  landmarks side files when the source has landmarks
  out/<case>/.instantrestore.json  the ``FolderRecord``: each file's sha256 and what made it. A case
                                   whose files are all there as recorded, made alike, is complete (a
                                   re-run resumes); files the writer did not write, or wrote with other
                                   settings, are kept (``WriteReport``) unless ``overwrite``

A case is named after its identity (``<identity>__tNN`` when several targets per identity).
"""
from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..utils.files import ensure_not_input
from ..utils.outputs import FolderRecord, png_bytes
from . import synthetic
from .datasets import ReportCounter, WriteReport, synthetic_identity_name
from .degradations import DegradationParams, DegradationPreset, degrade, get_preset, random_degradation_params
from .folders import load_square, scan_identity_folders, square_landmarks
from .landmark_files import landmarks_path, landmarks_text, read_landmarks
from .manifest import excluded_images

_TAG_TEST = 0x7E
DONE_FILE = "degradation.json"


TestSetReport = WriteReport  # written, skipped (complete cases resumed), other, foreign


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def case_files(refs: int, gt_landmarks: bool, ref_landmarks: list[bool]) -> list[str]:
    """The files (relative to the case folder) of a case with ``refs`` references, and landmarks
    where said, in the order ``write_test_case`` writes them."""
    names = ["gt.png", "degraded.png", *(["gt.json"] if gt_landmarks else [])]
    for k in range(refs):
        names += [f"conditioning/ref_{k:02d}.png", *([f"conditioning/ref_{k:02d}.json"] if ref_landmarks[k] else [])]
    return [*names, DONE_FILE]


def write_test_case(case_dir: str | os.PathLike, gt: np.ndarray, refs: list[np.ndarray], params: DegradationParams,
                    meta: dict, gt_landmarks: np.ndarray | None = None,
                    ref_landmarks: list[np.ndarray | None] | None = None, command: str = "make-testset",
                    made: dict | None = None) -> None:
    """Write one case: gt, degrade(gt, params), references and optional landmarks (uint8 RGB arrays),
    recorded in the case's ``FolderRecord`` of ``command`` with ``made`` (default: ``meta``)."""
    ref_landmarks = ref_landmarks or [None] * len(refs)
    h, w = gt.shape[:2]
    files: dict[str, bytes | str] = {"gt.png": png_bytes(gt), "degraded.png": png_bytes(degrade(gt, params))}
    if gt_landmarks is not None:
        files["gt.json"] = landmarks_text(gt_landmarks, w, h)
    for k, (ref, lm) in enumerate(zip(refs, ref_landmarks, strict=True)):
        files[f"conditioning/ref_{k:02d}.png"] = png_bytes(ref)
        if lm is not None:
            files[f"conditioning/ref_{k:02d}.json"] = landmarks_text(lm, ref.shape[1], ref.shape[0])
    files[DONE_FILE] = json.dumps({**meta, "params": params.to_dict()}, indent=2)
    FolderRecord(case_dir, command).write(files, meta if made is None else made)


def load_test_case(case_dir: str | os.PathLike) -> dict:
    """Read a case back: {"gt", "degraded": uint8 (H, W, 3) RGB, "refs": list of them,
    "gt_landmarks", "ref_landmarks": float32 [P, 2] or None, "meta": dict}."""
    case_dir = Path(case_dir)
    arr = lambda p: np.asarray(Image.open(p).convert("RGB"))  # noqa: E731
    lm = lambda p: (read_landmarks(landmarks_path(p)) or (None,))[0]  # noqa: E731
    refs = sorted((case_dir / "conditioning").glob("*.png"))
    return {"gt": arr(case_dir / "gt.png"), "degraded": arr(case_dir / "degraded.png"),
            "refs": [arr(p) for p in refs], "gt_landmarks": lm(case_dir / "gt.png"),
            "ref_landmarks": [lm(p) for p in refs], "meta": json.loads((case_dir / DONE_FILE).read_text())}


def _case_names(name: str, targets: int) -> Iterator[str]:
    for t in range(targets):
        yield name if targets == 1 else f"{name}__t{t:02d}"


def make_test_set(root: str | os.PathLike, out: str | os.PathLike, preset: str | DegradationPreset = "sr8", seed: int = 0,
                  refs: int = 4, size: int = 512, targets_per_identity: int = 1, overwrite: bool = False,
                  progress: bool = True) -> TestSetReport:
    """Write a fixed test set from an identity-folder dataset (any layout ``scan_identity_folders`` reads).

    Per identity (rng seeded by seed and the identity name, so adding identities changes no other
    case): ``targets_per_identity`` distinct targets, each with min(refs, n - 1) other photos and one
    draw of ``preset``. Images are centre-cropped and resized to ``size``.
    """
    root, out = Path(root), Path(out)
    ensure_not_input(out, [root])
    if out.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"--out {out} lies inside the dataset {root}; choose a folder outside it")
    preset_obj = get_preset(preset)
    counter = ReportCounter()
    records = scan_identity_folders(root, exclude=excluded_images(root))  # prepare-data's exclusions, if any
    for rec in tqdm(records, desc="test set", unit="identity", disable=not progress):
        rng = np.random.default_rng([_TAG_TEST, int(seed), _name_key(rec.name)])
        n = len(rec.images)
        targets = rng.choice(n, size=min(targets_per_identity, n), replace=False)
        for case, target in zip(_case_names(rec.name, len(targets)), targets):
            others = [j for j in range(n) if j != target]
            ref_ids = [others[j] for j in rng.choice(len(others), size=min(refs, len(others)), replace=False)]
            params = random_degradation_params(preset_obj, rng)  # drawn before any skip: draws stay aligned
            meta = {"identity": rec.name, "preset": preset_obj.name, "seed": int(seed),
                    "gt_source": str(rec.images[target]), "ref_sources": [str(rec.images[j]) for j in ref_ids]}
            made = {**meta, "command": "make-testset", "preset": dataclasses.asdict(preset_obj), "size": int(size)}
            has_landmarks = [landmarks_path(rec.images[j]).is_file() for j in [int(target)] + ref_ids]
            names = case_files(len(ref_ids), has_landmarks[0], has_landmarks[1:])
            if not counter.take(out / case, FolderRecord(out / case, "make-testset").status(names, made, overwrite)):
                continue
            loaded = [_load_with_landmarks(rec.images[j], size) for j in [int(target)] + ref_ids]
            write_test_case(out / case, loaded[0][0], [x[0] for x in loaded[1:]], params, meta,
                            loaded[0][1], [x[1] for x in loaded[1:]], "make-testset", made)
            counter.written += 1
    return counter.report()


def _load_with_landmarks(path: Path, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    img, actual = load_square(path, size)
    found = read_landmarks(landmarks_path(path))
    return img, None if found is None else square_landmarks(found[0], found[1:], actual, size)


def make_synthetic_test_set(out: str | os.PathLike, seed: int, identities: int, images_per_identity: int,
                            size: int = 128, preset: str | DegradationPreset = "sr8", refs: int = 4, overwrite: bool = False,
                            progress: bool = True) -> TestSetReport:
    """Test layout straight from the synthetic world: photo 0 of each identity is the target,
    photos 1..min(refs, M - 1) the references; the degradation rng is seeded by (seed, identity)."""
    if images_per_identity < 2:
        raise ValueError(f"a test case needs a target and a reference: --images-per-identity >= 2, got {images_per_identity}")
    preset_obj = get_preset(preset)
    out = Path(out)
    counter = ReportCounter()
    count = min(refs, images_per_identity - 1) + 1
    for i in tqdm(range(identities), desc="synthetic test set", unit="identity", disable=not progress):
        name = synthetic_identity_name(seed, i)
        meta = {"identity": name, "preset": preset_obj.name, "seed": int(seed), "synthetic": {"seed": int(seed), "identity": i, "images": list(range(count))}}
        made = {**meta, "command": "synth", "test_layout": True, "preset": dataclasses.asdict(preset_obj), "size": int(size)}
        status = FolderRecord(out / name, "synth").status(case_files(count - 1, True, [True] * (count - 1)), made, overwrite)
        if not counter.take(out / name, status):
            continue
        ident = synthetic.sample_identity(seed, i)
        shots = [synthetic.render(ident, j, size) for j in range(count)]
        params = random_degradation_params(preset_obj, np.random.default_rng([_TAG_TEST, int(seed), i]))
        write_test_case(out / name, shots[0].image, [s.image for s in shots[1:]], params, meta,
                        shots[0].landmarks, [s.landmarks for s in shots[1:]], "synth", made)
        counter.written += 1
    return counter.report()
