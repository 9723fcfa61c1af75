"""``instantrestore prepare-data``: check an identity-folder dataset and write its landmark side
files (thin layer over ``instantrestore.data.prepare``)."""
from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  # aligned crops (CelebRef-HQ person/references/*.png, FFHQ-Ref person/*.png): landmarks beside each image
  instantrestore prepare-data /data/celebref
  # unaligned photos (person/*.jpg): FFHQ-aligned 512 px crops + landmarks into a new dataset folder
  instantrestore prepare-data /data/photos --align /data/photos-aligned --size 512
  # 68 dlib points followed by mediapipe's 478 (pip install 'instantrestore[dense]')
  instantrestore prepare-data /data/celebref --landmarks dense
then: instantrestore train --data /data/celebref ...  (or --data /data/photos-aligned)

Images are never modified. Without --align, <stem>.json is written beside each usable image (the
folder must be writable); DATA/prepared.json records every image's checks and the ones training
leaves out (unreadable, too small, not square, no face, several faces, duplicates within a person
or across people). Running it again only reads images that are new or changed (SHA-256), so an
interrupted run resumes; side files it did not write are kept unless --overwrite.
Measured on one CPU core: about 40 s per 1,000 aligned 512 px crops; --align on 0.7-2 Mpx photos about
7 min per 1,000. A re-run with nothing new only hashes the files: about a second per 1,000."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help and the examples epilog kept as written."""


MAX_LISTED = 5  # excluded images named per reason; DATA/prepared.json has them all


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepare-data`` sub-command."""
    p = subparsers.add_parser(
        "prepare-data", formatter_class=_Formatter, epilog=EPILOG,
        help="check an identity-folder dataset and write the landmark side files training needs",
        description="Find every image of the identity folders under DATA (one folder per person), check each "
                    "and write dlib's 68 landmarks as <stem>.json beside it, the side files the landmark "
                    "attention loss needs. Prints what was left out and why.")
    p.add_argument("data", metavar="DATA", help="dataset root: one folder per person")
    p.add_argument("--align", metavar="OUT", help="the images are photos, not aligned crops: write FFHQ-aligned "
                                                  "crops of each one's largest face (and their landmarks) into OUT, "
                                                  "mirroring DATA's layout; OUT is then the dataset to train on")
    p.add_argument("--size", type=int, default=512, help="side of the aligned crops (--align)")
    p.add_argument("--landmarks", choices=("dlib", "dense"), default="dlib",
                   help="dlib: 68 iBUG points; dense: those 68, then mediapipe's 478 (needs mediapipe)")
    p.add_argument("--min-size", type=int, default=256,
                   help="leave out images whose shorter side (aligning: the aligned face) is under this many pixels")
    p.add_argument("--duplicate-bits", type=int, default=20,
                   help="photos whose 256-bit difference hashes differ in at most this many bits are duplicates "
                        "(-1: no duplicate check)")
    p.add_argument("--overwrite", action="store_true",
                   help="re-read every image and rewrite every side file, also ones prepare-data did not write")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prepare the dataset and print the summary; exit 0 (1 when no image is usable)."""
    from ..data.prepare import PrepareSettings, prepare_dataset

    settings = PrepareSettings(landmarks=args.landmarks, min_size=args.min_size, align_to=args.align,
                               size=args.size, duplicate_bits=args.duplicate_bits, overwrite=args.overwrite)
    report = prepare_dataset(args.data, settings, progress=not args.no_progress)
    usable = report.images - len(report.excluded)
    rate = f" ({report.seconds / report.images * 1000:.0f} s per 1,000)" if report.written else ""
    print(f"{report.images} image(s) of {report.people} {'person' if report.people == 1 else 'people'} in {report.seconds:.1f} s{rate}: "
          f"{report.written} side file(s) written, {report.up_to_date} up to date, {report.kept} kept as found; "
          f"{usable} usable, {len(report.excluded)} left out")
    by_kind: dict[str, list[str]] = {}
    for key, reason in report.excluded.items():
        by_kind.setdefault(reason.split(":", 1)[0], []).append(f"{key} ({reason.split(':', 1)[-1].strip()})")
    for kind, count in report.counts().items():
        names = by_kind[kind]
        print(f"  left out, {kind}: {count}: {'; '.join(names[:MAX_LISTED])}{' ...' if count > MAX_LISTED else ''}")
    if report.kept:
        print(f"warning: kept {report.kept} side file(s) prepare-data did not write; --overwrite replaces them",
              file=sys.stderr)
    if report.thin_people:
        names = report.thin_people
        print(f"warning: {len(names)} people have fewer than 2 usable images and are skipped in training: "
              f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}", file=sys.stderr)
    print(f"record: {report.manifest}; train with: instantrestore train --data {report.root} ...")
    return 0 if usable else 1
