"""`instantrestore eval`: measure restored faces against ground truth (and references)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..metrics.evaluate import METRICS, evaluate
from ..metrics.pairing import read_timings


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help and the examples epilog kept as written."""


EVAL_EPILOG = """examples:
  instantrestore eval --pred restored/ --gt gt/ --out report/
  instantrestore eval --pred restored/ --gt gt/ --refs album/ --lq degraded/ --out report/ --metrics psnr,ssim,ids
Every image with no detectable face is listed (stderr, summary.json "no_face"); with --faceless skip
the identity scores (ids, ids_ref) of pairs whose ground truth has none are left out. --out must lie outside the input folders."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", formatter_class=_Formatter, epilog=EVAL_EPILOG,
        help="measure outputs against ground truth: per-image CSV, summary JSON, Markdown table, grid PNG",
        description="Pair PRED and GT images by file name (stem), compute the chosen metrics per image and write "
                    "OUT/per_image.csv, OUT/summary.json, OUT/table.md (mean ± std) and OUT/grid.png. Unpaired "
                    "files are listed; metrics whose weights are missing are skipped with the reason.")
    p.add_argument("--pred", type=Path, required=True, help="folder of restored images")
    p.add_argument("--gt", type=Path, required=True, help="folder of ground-truth images (same names)")
    p.add_argument("--refs", type=Path, help="references: REFS/<name>/* per image, or images in REFS for all; "
                                             "IDS(REF) uses the first by file name")
    p.add_argument("--lq", type=Path, help="folder of degraded inputs, shown in the grid")
    p.add_argument("--out", type=Path, required=True, help="report folder (must not be an input folder)")
    p.add_argument("--metrics", default=",".join(METRICS), help=f"comma list from: {', '.join(METRICS)}")
    p.add_argument("--embedder", default="dlib",
                   help="identity model for IDS: dlib | onnx:PATH | torch:PATH (.pt2 export or TorchScript) | py:MODULE:ATTR")
    p.add_argument("--faceless", choices=("warn", "skip"), default="warn",
                   help="pairs whose ground truth shows no detectable face: list them (warn), or also leave their "
                        "identity scores out (skip)")
    p.add_argument("--timings", type=Path, help="CSV name,seconds from the restoring run, reported as s/image")
    p.add_argument("--grid", type=int, default=4, help="rows in the comparison grid (first names in order)")
    p.add_argument("--label", help="row label in the Markdown table (default: the --pred folder name)")
    p.add_argument("--overwrite", action="store_true", help="replace files in --out that eval did not write")
    p.set_defaults(func=run_eval)


MAX_LISTED = 10  # files listed by name on stderr; summary.json has them all


def run_eval(args: argparse.Namespace) -> int:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    embedder = None
    if {"ids", "ids_ref"} & set(metrics):
        from ..faces.identity import load_embedder
        try:
            embedder = load_embedder(args.embedder)
        except ImportError as exc:  # an optional extra is missing: say which, without a traceback
            raise ValueError(str(exc)) from exc
    timings = read_timings(args.timings) if args.timings else None
    summary = evaluate(args.pred, args.gt, args.out, refs_dir=args.refs, lq_dir=args.lq, metrics=metrics,
                       embedder=embedder, timings=timings, grid=args.grid, label=args.label,
                       faceless=args.faceless, overwrite=args.overwrite)
    print((args.out / "table.md").read_text(), end="")
    unpaired = summary["unpaired"]
    if unpaired["pred_only"] or unpaired["gt_only"] or unpaired["ambiguous"] or summary["problems"]:
        print("warning: some files were not measured; see table.md / summary.json", file=sys.stderr)
    for problem in summary["problems"][:MAX_LISTED]:  # each reason names its file
        print(f"warning: {problem['name']} not measured: {problem['reason']}", file=sys.stderr)
    for key, what in (("pred_only", f"no ground truth in {args.gt}"), ("gt_only", f"no prediction in {args.pred}"),
                      ("ambiguous", "several files with this name")):
        names = [str(n) for n in unpaired[key]]
        if names:
            print(f"warning: {len(names)} not measured ({what}): {', '.join(names[:MAX_LISTED])}"
                  f"{' ...' if len(names) > MAX_LISTED else ''}", file=sys.stderr)
    if len(summary["problems"]) > MAX_LISTED:
        print(f"warning: {len(summary['problems']) - MAX_LISTED} more not measured (summary.json \"problems\")",
              file=sys.stderr)
    if summary.get("no_face"):
        faces = summary["no_face"]
        what = ("identity not scored where the ground truth has none" if args.faceless == "skip"
                else "their identity scores mean little (--faceless skip leaves them out)")
        print(f"warning: no face found in {len(faces)} image(s), {what}: "
              f"{', '.join(faces[:5])}{' ...' if len(faces) > 5 else ''}", file=sys.stderr)
    written = ["per_image.csv", "summary.json", "table.md"] + ([summary["grid"]] if summary.get("grid") else [])
    print(f"wrote {args.out}/{', '.join(written)}" + ("" if summary.get("grid") else " (no grid: nothing was measured)"))
    return 0 if summary["n_measured"] else 1
