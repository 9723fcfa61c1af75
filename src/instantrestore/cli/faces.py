"""`instantrestore align`, `paste` and `refs`; also the reference flags other commands reuse.

The align and paste jobs are ``pipeline.face_jobs.align_folder`` / ``paste_folder``; here are
their flags and what they print."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..faces.select import select_references
from ..faces.verify import MODES, verify_references
from ..pipeline.face_jobs import align_folder, paste_folder
from ..pipeline.folder_jobs import progress_bar
from ..utils.files import atomic_write_text, list_images
from ..utils.images import load_image
from ..utils.outputs import claim_outputs, json_with
from .checks import at_least

REFS_KEYS = ("input", "kept", "ranking", "verification")  # the JSON `refs --out` writes


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
warning. Restored crops that would be enlarged over 2x
to cover their face in the photo (e.g. a 128 px model output for a face of 400 px) are refused, as
they would blur it (the rule of `restore`); --allow-small pastes them anyway.""",
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
                   help="paste restored crops even when they would be enlarged over 2x to cover their face")

    r = _command(
        subparsers, "refs", run_refs,
        "rank and verify reference photos for one degraded input (all aligned crops)",
        "Rank the aligned crops in REFS for the aligned degraded INPUT by identity, pose, sharpness "
        "and affine landmark distance, and check that they show one person matching the input.",
        {"input": "aligned degraded face (e.g. from `instantrestore align`)",
         "refs": "folder of aligned reference candidates"})
    r.add_argument("--out", type=Path, help="also write the ranking and verification as JSON here")
    r.add_argument("--overwrite", action="store_true", help="replace an --out file that refs did not write")
    add_reference_args(r, default_k=3)


def add_reference_args(parser: argparse.ArgumentParser, default_k: int = 0) -> None:
    """Flags shared by commands that take references: --select-refs, --verify-refs, --embedder."""
    parser.add_argument("-k", "--select-refs", type=at_least(0, "keep all"), default=default_k, metavar="K",
                        help="keep the K best references (identity, pose, sharpness, A-LD); 0 keeps all")
    parser.add_argument("--verify-refs", choices=MODES, default="warn",
                        help="check the references show one person matching the input: warn, refuse (strict) or skip")
    parser.add_argument("--embedder", default="dlib",
                        help="identity model: dlib | onnx:PATH | torch:PATH (.pt2 export or TorchScript) | py:MODULE:ATTR")


def resolve_references(args: argparse.Namespace, lq: np.ndarray | None, refs: list[np.ndarray], names: list[str],
                       lq_name: str = "the input"):
    """Apply --verify-refs then --select-refs; returns (kept indices best first, report or None, ranking or None).

    References with no detectable face are dropped (and reported) unless --verify-refs off."""
    from ..faces.identity import load_embedder  # looked up per call: tests stand a stub identity model in

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
    outliers = {c.name for c in report.outliers} if report is not None else set()
    if outliers and any(names[i] not in outliers for i in keep):  # never choose one that looks like another person
        print(f"warning: left out {len(outliers)} reference(s) that look like another person: "
              f"{', '.join(sorted(outliers))} (--verify-refs off keeps them)", file=sys.stderr)
        keep = [i for i in keep if names[i] not in outliers]
    if args.select_refs and args.select_refs > 0 and lq is not None:
        kept_refs = [refs[i] for i in keep]
        ranking = select_references(lq, kept_refs, args.select_refs, names=[names[i] for i in keep], embedder=embedder)
        ranking = [replace(s, index=keep[s.index]) for s in ranking]
        keep = [s.index for s in ranking]
    return keep, report, ranking


def _load_array(path: Path) -> np.ndarray:
    return np.asarray(load_image(path))


def run_align(args: argparse.Namespace) -> int:
    result = align_folder(args.input, args.out, size=args.size, max_side=args.max_side, min_face=args.min_face,
                          fallback=args.fallback, largest_only=args.largest_only, overwrite=args.overwrite,
                          progress=progress_bar)
    skipped = f" ({result.skipped} already done)" if result.skipped else ""
    photos = f"{result.photos - len(result.errors)} of {result.photos}" if result.errors else str(result.photos)
    print(f"aligned {result.faces} face(s) from {photos} photo(s) into {args.out}{skipped}")
    if result.no_face:
        print(f"no face found in {len(result.no_face)}: {', '.join(result.no_face)}", file=sys.stderr)
    if result.tiny:
        print(f"tiny faces (< {args.min_face} px, expect poor results): {', '.join(result.tiny)}", file=sys.stderr)
    for line in result.errors:
        print(f"skipped: {line}", file=sys.stderr)
    return 1 if result.errors else 0


def run_paste(args: argparse.Namespace) -> int:
    result = paste_folder(args.aligned, args.restored, args.out, overwrite=args.overwrite,
                          allow_small=args.allow_small, progress=progress_bar)
    kept = result.plan.kept
    done = f" ({kept} already pasted; --overwrite redoes them)" if kept else ""
    print(f"pasted {result.pasted} face(s) into {result.photos} photo(s) in {args.out}{done}")
    for line in result.problems:
        print(f"skipped: {line}", file=sys.stderr)
    if result.missing:
        print(f"no restored crop for {len(result.missing)} face(s), kept as they were: {', '.join(result.missing)}",
              file=sys.stderr)
    if result.small:
        verb = "pasted anyway (--allow-small)" if args.allow_small else "NOT pasted, original pixels kept"
        print(f"warning: {len(result.small)} restored crop(s) far smaller than the face they replace, "
              f"{verb}: {', '.join(result.small)}; restore with a larger model, or pass --allow-small",
              file=sys.stderr)
    for line in result.plan.kept_lines("paste", "pasted from other restored crops or settings"):
        print(line, file=sys.stderr)
    return 1 if result.problems else 0


def run_refs(args: argparse.Namespace) -> int:
    paths = [p for p in list_images(args.refs) if p.resolve() != args.input.resolve()]
    if not paths:
        raise FileNotFoundError(f"{args.refs}: no reference images found")
    if args.out:  # before any work: never a file of the user's, never an input
        claim_outputs([args.out], json_with(*REFS_KEYS), "refs", args.overwrite, inputs=[args.input, *paths])
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
        payload = {"input": str(args.input), "kept": [paths[i].name for i in keep],
                   "ranking": [s.to_json() for s in ranking] if ranking else None,
                   "verification": report.to_json() if report else None}
        atomic_write_text(args.out, json.dumps(payload, indent=1) + "\n")
    return 0
