"""Data commands: ``degrade`` (eq. 9 on a file or folder), ``synth`` (synthetic identities) and
``make-testset`` (a fixed test set from identity folders). Thin layer over the library."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import zlib
from pathlib import Path

import numpy as np

from ..data.degradations import PRESETS, DegradationPreset, get_preset, random_degrade
from ..pipeline.folder_jobs import kept_lines, progress_bar
from ..pipeline.transform_folder import transform_folder


class _FMT(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help and the examples epilog kept as written."""


EPILOGS = {
    "degrade": """examples:
  instantrestore degrade face.png face_lq.png --preset sr8
  instantrestore degrade photos/ degraded/ --preset paper --seed 1 --override noise_range=0,5
Existing outputs are skipped (--overwrite redoes them); each output records the preset and seed that
made it, and one made with other settings (or not by degrade) is kept with a warning. Temporaries
left by a killed run are removed at the next start.""",
    "synth": """examples:
  instantrestore synth --out synth/ --identities 10 --images-per-identity 4
  instantrestore synth --out testset/ --identities 8 --test-layout --preset sr8
Each folder's .instantrestore.json records what synth wrote there (the files' sha256 and settings):
a re-run skips what it made alike and keeps any other file with a warning (--overwrite replaces it).""",
    "make-testset": """examples:
  instantrestore make-testset /data/celebref --out testset/ --refs 4 --preset sr8
Each case's .instantrestore.json records what make-testset wrote there (the files' sha256 and settings):
a re-run skips complete cases made alike and keeps any other file with a warning (--overwrite replaces it).""",
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "degrade", formatter_class=_FMT, epilog=EPILOGS["degrade"],
        help="degrade an image or a folder with eq. 9 (blur, downsample, noise, JPEG, upsample)",
        description="Degrade IN (an image, or a folder searched recursively) into OUT as PNG. Each file's "
                    "degradation is seeded by --seed and its relative path, so results do not depend on order "
                    "and an interrupted run resumes. Landmark side files (<stem>.json) are copied along.")
    p.add_argument("input", metavar="IN", help="image file or folder of images")
    p.add_argument("output", metavar="OUT", help="output image file (for a file IN) or folder")
    _preset_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the degradation draws")
    p.add_argument("--overwrite", action="store_true", help="re-write outputs that already exist")
    p.set_defaults(func=cmd_degrade)

    p = subparsers.add_parser(
        "synth", formatter_class=_FMT, epilog=EPILOGS["synth"],
        help="render procedural synthetic identities (identity folders with landmarks, or a test set)",
        description="Render N synthetic people x M photos each into OUT/<identity>/<j>.png with a landmarks "
                    "JSON per image (68 iBUG points, then the identity's marks). With --test-layout, write "
                    "OUT/<identity>/{gt,degraded}.png + conditioning/ instead.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--identities", type=int, default=100, help="number of identities N")
    p.add_argument("--images-per-identity", type=int, default=8, help="photos M per identity")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (128, 256, 512, ...)")
    p.add_argument("--seed", type=int, default=0, help="world seed: identity i of seed S is always the same person")
    p.add_argument("--test-layout", action="store_true", help="write the test layout (photo 0 degraded as the target)")
    p.add_argument("--refs", type=int, default=4, help="references per test case (--test-layout)")
    _preset_args(p, default="sr8")
    p.add_argument("--overwrite", action="store_true", help="re-write outputs that already exist")
    p.set_defaults(func=cmd_synth)

    p = subparsers.add_parser(
        "make-testset", formatter_class=_FMT, epilog=EPILOGS["make-testset"],
        help="write a fixed, seeded test set (degraded, gt, references) from identity folders",
        description="Read ROOT in any identity-folder layout and write OUT/<identity>/{degraded.png, gt.png, "
                    "conditioning/*.png, degradation.json}. Same ROOT, seed and preset give the same test set.")
    p.add_argument("root", metavar="ROOT", help="identity-folder dataset")
    p.add_argument("--out", required=True, help="output folder (outside ROOT)")
    _preset_args(p, default="sr8")
    p.add_argument("--seed", type=int, default=0, help="seed of targets, references and degradations")
    p.add_argument("--refs", type=int, default=4, help="references per case (fewer if the identity has fewer)")
    p.add_argument("--size", type=int, default=512, help="output side in pixels (centre-crop + resize)")
    p.add_argument("--targets-per-identity", type=int, default=1, help="test cases per identity")
    p.add_argument("--overwrite", action="store_true", help="re-write cases already there, and replace files it did not write")
    p.set_defaults(func=cmd_make_testset)


def _preset_args(p: argparse.ArgumentParser, default: str = "paper") -> None:
    p.add_argument("--preset", default=default, choices=sorted(PRESETS), help="degradation preset")
    p.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                   help="replace a preset field, e.g. noise_range=0,5 or iso_prob=1 (repeatable)")


def parse_preset(name: str, overrides: list[str]) -> DegradationPreset:
    """The preset ``name`` with ``FIELD=VALUE`` overrides applied (ranges as ``lo,hi``)."""
    fields: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--override expects FIELD=VALUE, got {item!r}")
        nums = [float(v) for v in value.split(",")]
        fields[key.strip()] = tuple(nums) if len(nums) > 1 else (int(nums[0]) if key.strip() == "kernel_size" else nums[0])
    return get_preset(name, **fields)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")


def cmd_degrade(args: argparse.Namespace) -> int:
    _logging()
    preset = parse_preset(args.preset, args.override)
    settings = {"command": "degrade", "preset": dataclasses.asdict(preset), "seed": args.seed}

    def degrade_one(image: np.ndarray, name: str) -> np.ndarray:
        # seeded by the input's relative path: the result does not depend on the order or on resuming
        return random_degrade(image, preset, np.random.default_rng([args.seed, zlib.crc32(name.encode())]))

    result = transform_folder(Path(args.input), Path(args.output), settings, degrade_one, overwrite=args.overwrite,
                              progress=progress_bar, desc="degrade")
    for line in result.failed:
        print(f"warning: {line}; skipped", file=sys.stderr)
    print(f"degraded {result.written} image(s) with preset {preset.name} seed {args.seed}; "
          f"{result.plan.kept} already present, {len(result.failed)} unreadable -> {args.output}")
    for line in result.plan.kept_lines("degrade", "made with another preset, seed or input",
                                       "redo them with these settings"):
        print(line, file=sys.stderr)
    return 1 if result.failed else 0  # the run goes on past a bad file, but the exit code says so


def cmd_synth(args: argparse.Namespace) -> int:
    _logging()
    from ..data.datasets import write_synthetic_identity_folders
    from ..data.testset import make_synthetic_test_set

    if args.identities < 1 or args.images_per_identity < 1 or args.size < 16:
        raise ValueError("need --identities >= 1, --images-per-identity >= 1 and --size >= 16")
    if args.test_layout:
        report = make_synthetic_test_set(args.out, args.seed, args.identities, args.images_per_identity, args.size,
                                         parse_preset(args.preset, args.override), args.refs, args.overwrite)
        print(f"wrote {report.written} test case(s), {report.skipped} already complete -> {args.out}")
    else:
        report = write_synthetic_identity_folders(args.out, args.seed, args.identities, args.images_per_identity,
                                                  args.size, args.overwrite)
        print(f"rendered {report.written} image(s), {report.skipped} already present -> {args.out}")
    _print_kept(report, "synth")
    return 0


def _print_kept(report, command: str) -> None:
    for line in kept_lines(command, list(report.other), list(report.foreign), "made with other settings",
                           "redo them with these settings"):
        print(line, file=sys.stderr)


def cmd_make_testset(args: argparse.Namespace) -> int:
    _logging()
    from ..data.testset import make_test_set

    report = make_test_set(args.root, args.out, parse_preset(args.preset, args.override), args.seed, args.refs,
                           args.size, args.targets_per_identity, args.overwrite)
    print(f"wrote {report.written} test case(s), {report.skipped} already complete -> {args.out}")
    _print_kept(report, "make-testset")
    return 0
