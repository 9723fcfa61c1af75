"""`instantrestore align` and `instantrestore refs`; also the reference flags other commands reuse."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..utils.files import (atomic_write_text, clean_stale_temporaries, ensure_not_input, ensure_outside_inputs, list_images,
                     refuse_foreign)
from ..utils.images import ImageError, load_image, save_image
from .common import recorded_settings, warn_kept
from ..faces.align import align_photo
from ..faces.identity import load_embedder
from ..faces.paste import paste_restored
from ..faces.select import select_references
from ..faces.verify import MODES, verify_references

_FMT = argparse.ArgumentDefaultsHelpFormatter


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help and the examples epilog kept as written."""


EPILOGS = {
    "align": """examples:
  instantrestore align photo.jpg aligned/
  instantrestore align photos/ aligned/ --largest-only
Re-running resumes: a photo whose JSON and crops are there is skipped. A file in OUT that align
did not write for that photo is never replaced without --overwrite.""",
    "paste": """examples:
  instantrestore paste aligned/ restored/ final/
Photos already pasted into OUT are skipped (--overwrite redoes them); each pasted photo records the
restored crops that made it, and one made from other crops (or not by paste) is kept with a
warning. Restored crops much smaller
than the aligned crops (e.g. a 128 px model output over a 512 px crop) are refused, as they
would blur the photo; --allow-small pastes them anyway.""",
    "refs": """examples:
  instantrestore refs aligned/photo_00.png album/ -k 4
  instantrestore refs aligned/photo_00.png album/ --verify-refs strict --out refs.json
Crops with no detectable face (noise, blank or white images) are reported and never compared.
Thresholds and their measured error rates: docs/bad_input.md.""",
}


def _command(subparsers, name: str, func, summary: str, description: str, positionals: dict[str, str]):
    """A sub-command with Path positionals (name -> help) and ``func`` as its action."""
    parser = subparsers.add_parser(name, formatter_class=_Formatter, help=summary, description=description,
                                   epilog=EPILOGS.get(name))
    for arg, text in positionals.items():
        parser.add_argument(arg, type=Path, help=text)
    parser.set_defaults(func=func)
    return parser


def register(subparsers) -> None:
    p = _command(
        subparsers, "align", run_align,
        "detect faces in photos and write FFHQ-aligned crops plus a JSON of boxes, landmarks, transforms",
        "Detect every face (dlib HOG, CNN fallback), fit 68/5-point landmarks and warp each face "
        "to an FFHQ-aligned crop. Writes OUT/{name}_{idx:02d}.png and OUT/{name}.json per photo "
        "(the 2x3 photo->crop matrix and its inverse are kept for paste-back).",
        {"input": "a photo or a folder of photos", "out": "output folder (created; must not be the input folder)"})
    p.add_argument("-s", "--size", type=int, default=512, help="crop side in pixels")
    p.add_argument("--max-side", type=int, default=800, help="photos are downscaled to this side for detection")
    p.add_argument("--min-face", type=int, default=64, help="faces smaller than this (pixels) are reported as tiny")
    p.add_argument("--fallback", choices=("cnn", "none"), default="cnn", help="detector used when HOG finds nothing")
    p.add_argument("--largest-only", action="store_true", help="keep only the largest face per photo")
    p.add_argument("--overwrite", action="store_true", help="redo photos already aligned and replace files in OUT")

    p = _command(
        subparsers, "paste", run_paste,
        "paste restored crops back into the photos that `align` cut them from",
        "For every ALIGNED/{name}.json written by `align`, paste RESTORED/{crop name} (any square size) "
        "back into the original photo with the inverse warp and a feathered mask; writes OUT/{name}.png. "
        "A face without a restored crop keeps its original pixels.",
        {"aligned": "folder written by `instantrestore align` (JSON per photo)",
         "restored": "folder of restored crops, named like the aligned crops",
         "out": "output folder for the pasted photos"})
    p.add_argument("--overwrite", action="store_true", help="redo photos already pasted into OUT")
    p.add_argument("--allow-small", action="store_true",
                   help="paste restored crops even when much smaller than the aligned crops they replace")

    r = _command(
        subparsers, "refs", run_refs,
        "rank and verify reference photos for one degraded input (all aligned crops)",
        "Rank the aligned crops in REFS for the aligned degraded INPUT by identity, pose, sharpness "
        "and affine landmark distance, and check that they show one person matching the input.",
        {"input": "aligned degraded face (e.g. from `instantrestore align`)",
         "refs": "folder of aligned reference candidates"})
    r.add_argument("--out", type=Path, help="also write the ranking and verification as JSON here")
    add_reference_args(r, default_k=3)


def add_reference_args(parser: argparse.ArgumentParser, default_k: int = 0) -> None:
    """Flags shared by commands that take references: --select-refs, --verify-refs, --embedder."""
    parser.add_argument("-k", "--select-refs", type=int, default=default_k, metavar="K",
                        help="keep the K best references (identity, pose, sharpness, A-LD); 0 keeps all")
    parser.add_argument("--verify-refs", choices=MODES, default="warn",
                        help="check the references show one person matching the input: warn, refuse (strict) or skip")
    parser.add_argument("--embedder", default="dlib",
                        help="identity model: dlib | onnx:PATH | torch:PATH (.pt2 export or TorchScript) | py:MODULE:ATTR")


def resolve_references(args: argparse.Namespace, lq: np.ndarray | None, refs: list[np.ndarray], names: list[str],
                       lq_name: str = "the input"):
    """Apply --verify-refs then --select-refs; returns (kept indices best first, report or None, ranking or None).

    References with no detectable face are dropped (and reported) unless --verify-refs off."""
    try:
        embedder = load_embedder(args.embedder)
    except ImportError as exc:  # an optional extra is missing: say which, without a traceback
        raise ValueError(str(exc)) from exc
    report = None
    if args.verify_refs != "off":
        report = verify_references(refs, names, lq=lq, embedder=embedder, mode="off", lq_name=lq_name)
        if args.verify_refs == "strict" and not report.ok:
            raise ValueError("references refused (--verify-refs strict): " + "; ".join(report.problems()))
        for line in report.problems():
            print(f"warning: {line}", file=sys.stderr)
    ranking = None
    keep = [i for i in range(len(refs)) if report is None or names[i] not in report.faceless]
    if not keep:
        raise ValueError("no reference shows a detectable face: " + ", ".join(names))
    if args.select_refs and args.select_refs > 0 and lq is not None:
        kept_refs = [refs[i] for i in keep]
        ranking = select_references(lq, kept_refs, args.select_refs, names=[names[i] for i in keep], embedder=embedder)
        ranking = [replace(s, index=keep[s.index]) for s in ranking]
        keep = [s.index for s in ranking]
    return keep, report, ranking


def _load_array(path: Path) -> np.ndarray:
    return np.asarray(load_image(path))


def _align_record(json_path: Path) -> dict | None:
    """The JSON `align` wrote at ``json_path``, or None when there is none (or it is not align's)."""
    try:
        record = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "photo" in record and "status" in record else None


def _already_aligned(record: dict | None, photo: Path, out: Path, size: int) -> bool:
    """Resume: this photo's record is complete and every crop it lists is there at this size."""
    if record is None or record.get("status") not in ("ok", "no_face") or Path(record["photo"]) != photo:
        return False
    return all((out / face["crop"]).is_file() and face.get("crop_size") == size for face in record.get("faces", []))


def run_align(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.input.is_dir():
        photos = list_images(args.input)
        if not photos:
            raise FileNotFoundError(f"{args.input}: no images found")
        ensure_outside_inputs(args.out, [args.input])
    elif args.input.is_file():
        photos = [args.input]
    else:
        raise FileNotFoundError(f"{args.input}: no such file or folder")
    args.out.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(args.out, recursive=False)
    stems = [p.stem for p in photos]
    # a.jpg and a.png in one folder must not overwrite each other's outputs
    out_stem = {p: p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in photos}
    counts = {"photos": 0, "faces": 0, "skipped": 0, "no_face": [], "tiny": [], "errors": []}
    for photo in tqdm(photos, desc="align", unit="photo", disable=len(photos) < 2):
        counts["photos"] += 1
        json_path = args.out / f"{out_stem[photo]}.json"
        ensure_not_input(json_path, photos)
        previous = _align_record(json_path)
        if not args.overwrite and _already_aligned(previous, photo, args.out, args.size):
            counts["skipped"] += 1
            counts["faces"] += len(previous["faces"])
            continue
        # Files align wrote for this photo before (a finished or interrupted run) may be replaced;
        # anything else in OUT is the user's and is only replaced with --overwrite.
        ours = previous is not None and Path(previous["photo"]) == photo
        if json_path.exists() and not ours and not args.overwrite:
            counts["errors"].append(f"{json_path} exists and was not written by align for {photo}; "
                                    "pass --overwrite or choose another OUT")
            continue
        owned = {f"{out_stem[photo]}_{i:02d}.png" for i in range(int(previous.get("planned", 0)) if ours else 0)}
        owned |= {face["crop"] for face in previous.get("faces", [])} if ours else set()
        record = {"photo": str(photo), "status": "ok", "faces": []}
        try:
            image = _load_array(photo)
            record["photo_size"] = [image.shape[1], image.shape[0]]
            # the library's detect -> align step (faces.align.align_photo), as FaceRestorer runs it
            aligned_faces = align_photo(image, args.size, max_side=args.max_side, fallback=args.fallback,
                                        largest_only=args.largest_only)
            crop_paths = [args.out / f"{out_stem[photo]}_{idx:02d}.png" for idx in range(len(aligned_faces))]
            for path in crop_paths:
                ensure_not_input(path, photos)
            if not args.overwrite:
                refuse_foreign([p for p in crop_paths if p.name not in owned], f"align (for {photo.name})")
            # Claim the crop names first, so an interrupted run's crops are known as ours on resume.
            atomic_write_text(json_path, json.dumps({"photo": str(photo), "status": "writing",
                                                     "planned": len(aligned_faces), "faces": []}) + "\n")
            for idx, (aligned, crop_path) in enumerate(zip(aligned_faces, crop_paths)):
                save_image(_to_pil(aligned.crop), crop_path)
                tiny = aligned.face.size < args.min_face
                record["faces"].append({"index": idx, "crop": crop_path.name, "tiny": tiny, **aligned.to_json()})
                if tiny:
                    counts["tiny"].append(f"{photo.name}#{idx} ({aligned.face.size:.0f} px)")
            counts["faces"] += len(aligned_faces)
            if not aligned_faces:
                record["status"] = "no_face"
                counts["no_face"].append(photo.name)
        except (ImageError, FileExistsError) as exc:
            if isinstance(exc, FileExistsError):
                counts["errors"].append(str(exc))
                continue
            record.update(status="error", error=str(exc))
            counts["errors"].append(str(exc))
        atomic_write_text(json_path, json.dumps(record, indent=1) + "\n")
    skipped = f" ({counts['skipped']} already done)" if counts["skipped"] else ""
    print(f"aligned {counts['faces']} face(s) from {counts['photos']} photo(s) into {args.out}{skipped}")
    if counts["no_face"]:
        print(f"no face found in {len(counts['no_face'])}: {', '.join(counts['no_face'])}", file=sys.stderr)
    if counts["tiny"]:
        print(f"tiny faces (< {args.min_face} px, expect poor results): {', '.join(counts['tiny'])}", file=sys.stderr)
    for line in counts["errors"]:
        print(f"skipped: {line}", file=sys.stderr)
    return 1 if counts["errors"] else 0


SMALL_CROP_RATIO = 0.5  # a restored crop under half the aligned side would visibly blur the photo


def run_paste(args: argparse.Namespace) -> int:
    records = sorted(args.aligned.glob("*.json"))
    if not records:
        raise FileNotFoundError(f"{args.aligned}: no JSON files from `instantrestore align`")
    ensure_outside_inputs(args.out, [args.aligned, args.restored])
    args.out.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(args.out, recursive=False)
    pasted, skipped, missing, small = 0, 0, [], []
    kept_other, kept_unknown = [], []
    for record_path in records:
        record = _align_record(record_path)
        if record is None or record.get("status") != "ok":
            continue
        out_path = args.out / f"{record_path.stem}.png"
        photo_path = Path(record["photo"])
        if out_path.exists() and not args.overwrite:
            recorded = recorded_settings(out_path)
            if recorded is None:
                kept_unknown.append(out_path.name)
            elif recorded != _paste_settings(record, args):
                kept_other.append(out_path.name)
            else:
                skipped += 1
            continue
        crops, matrices, crop_sizes = [], [], []
        for face in record["faces"]:
            restored = args.restored / face["crop"]
            if not restored.is_file():
                missing.append(face["crop"])
                continue
            crop = _load_array(restored)
            if crop.shape[0] != crop.shape[1]:
                raise ValueError(f"{restored}: restored crops must be square, got {crop.shape[1]}x{crop.shape[0]}")
            if crop.shape[0] < SMALL_CROP_RATIO * face["crop_size"]:
                small.append(f"{restored.name} ({crop.shape[0]} px for a {face['crop_size']} px crop)")
                if not args.allow_small:
                    continue
            crops.append(crop)
            matrices.append(np.array(face["matrix"]))
            crop_sizes.append(face["crop_size"])
        image = _load_array(photo_path)
        ensure_not_input(out_path, [photo_path])
        save_image(_to_pil(paste_restored(image, crops, matrices, crop_sizes)), out_path,
                   provenance=json.dumps(_paste_settings(record, args), sort_keys=True))
        pasted += len(crops)
    kept = len(kept_other) + len(kept_unknown)
    done = f" ({skipped + kept} already pasted; --overwrite redoes them)" if skipped + kept else ""
    print(f"pasted {pasted} face(s) into {len(records) - skipped - kept} photo(s) in {args.out}{done}")
    if missing:
        print(f"no restored crop for {len(missing)} face(s), kept as they were: {', '.join(missing)}", file=sys.stderr)
    if small:
        verb = "pasted anyway (--allow-small)" if args.allow_small else "NOT pasted, original pixels kept"
        print(f"warning: {len(small)} restored crop(s) far smaller than the aligned crop they replace, {verb}: "
              f"{', '.join(small)}; restore with a model of the crop's size, or pass --allow-small", file=sys.stderr)
    warn_kept("paste", kept_other, kept_unknown, "pasted from other restored crops or settings", "redo them")
    return 0


def _paste_settings(record: dict, args: argparse.Namespace) -> dict:
    """What a pasted photo is made of: the photo and each face's restored crop (path, side, content
    digest) or its absence; read from headers and bytes only, so resuming stays cheap."""
    from PIL import Image

    faces = []
    for face in record["faces"]:
        restored = args.restored / face["crop"]
        entry: dict = {"crop": str(restored.resolve()), "present": restored.is_file()}
        if entry["present"]:
            data = restored.read_bytes()
            entry["sha256"] = hashlib.sha256(data).hexdigest()[:16]
            try:
                with Image.open(restored) as im:
                    entry["size"] = list(im.size)
            except OSError:
                entry["size"] = None
            # pasted, or refused as too small (what --allow-small changes)
            entry["pasted"] = bool(entry["size"]) and (
                args.allow_small or entry["size"][0] >= SMALL_CROP_RATIO * face["crop_size"])
        faces.append(entry)
    return {"command": "paste", "photo": str(Path(record["photo"]).resolve()), "faces": faces}


def _to_pil(array: np.ndarray):
    from PIL import Image
    return Image.fromarray(array)


def run_refs(args: argparse.Namespace) -> int:
    paths = [p for p in list_images(args.refs) if p.resolve() != args.input.resolve()]
    if not paths:
        raise FileNotFoundError(f"{args.refs}: no reference images found")
    lq = _load_array(args.input)
    refs = [_load_array(p) for p in paths]
    sizes = {r.shape for r in refs} | {lq.shape}
    if len(sizes) != 1:
        raise ValueError(f"input and references must be aligned crops of one size, got {sorted(sizes)}")
    keep, report, ranking = resolve_references(args, lq, refs, [p.name for p in paths], lq_name=args.input.name)
    if ranking:
        print("rank  score  identity  pose   sharp  A-LD(eyes)  file")
        for i, s in enumerate(ranking, 1):
            print(f"{i:>4}  {s.score:.3f}  {s.identity:.4f}  {s.pose_distance:.3f}  {s.sharpness:.2f}  "
                  f"{s.ald:>10.1f}  {s.name}")
    else:
        print("kept references: " + ", ".join(paths[i].name for i in keep))
    if report is not None:
        print("references verified: ok" if report.ok else "references verified: problems found (see warnings)")
    if args.out:
        ensure_not_input(args.out, [args.input, *paths])
        payload = {"input": str(args.input), "kept": [paths[i].name for i in keep],
                   "ranking": [s.to_json() for s in ranking] if ranking else None,
                   "verification": report.to_json() if report else None}
        atomic_write_text(args.out, json.dumps(payload, indent=1) + "\n")
    return 0
