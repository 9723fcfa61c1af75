"""Throughput: faces per minute on a folder of real photos with an album, and how a restore's
per-face cost scales when faces of one person go through one UNet call (batch size).

Part 1 runs ``FaceRestorer.enhance`` over every photo of a folder (default: the real photos of
``../shared/realfaces``: obama's raw photos and one degraded CelebRef-HQ photo per person, with
an album of each person's aligned references), with the album cache warm, exact (fp32) and on
the fast path (``optimize_for_inference("auto")``), interleaved. Part 2 restores B crops of one
person with one cached reference set in one call, B = 1, 2, 4, 8, and reports seconds per face.
Random or shipped weights: the cost does not depend on their values.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/throughput.py                      # shipped tiny model
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/throughput.py --backbone sd-turbo --batches 1,2,4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REALFACES = Path(__file__).resolve().parents[2] / "shared" / "realfaces"


def load(backbone: str):
    from instantrestore import InstantRestore
    from instantrestore.assets import load_shipped_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if backbone == "shipped":
            return load_shipped_model()
        return InstantRestore.from_config(backbone, seed=0).eval()


def make_album(root: Path, realfaces: Path, people: int) -> list[Path]:
    """album/<person>/ links to aligned references; returns the photos to restore."""
    photos = sorted((realfaces / "obama" / "raw_photos").iterdir())
    (root / "obama").mkdir(parents=True)
    for ref in sorted((realfaces / "obama" / "aligned_references").iterdir())[:4]:
        (root / "obama" / ref.name).symlink_to(ref.resolve())
    for person in sorted((realfaces / "celebref").iterdir())[:people]:
        (root / person.name).mkdir()
        for ref in sorted((person / "references").iterdir())[:4]:
            (root / person.name / ref.name).symlink_to(ref.resolve())
        photos.extend(sorted(person.glob("degraded_*")))
    return photos


def folder_rate(args: argparse.Namespace) -> dict:
    from instantrestore.pipeline.album import Album
    from instantrestore.pipeline.face_restorer import FaceRestorer
    from instantrestore.utils.images import load_image

    models = {"fp32 exact": load(args.backbone), "fast (auto)": load(args.backbone)}
    applied = models["fast (auto)"].optimize_for_inference("auto")
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_album(Path(tmp) / "album", Path(args.realfaces), args.people)
        images = [np.asarray(load_image(p)) for p in photos]
        restorers = {name: FaceRestorer(m, album=Album(Path(tmp) / "album", cache_dir=False), k=4)
                     for name, m in models.items()}
        faces = 0
        for restorer in restorers.values():  # warm: every person's references aligned, embedded, encoded
            faces = sum(len(restorer.enhance(image)[1]) for image in images)
        seconds: dict[str, list[float]] = {name: [] for name in restorers}
        for _ in range(args.repeats):
            for name, restorer in restorers.items():
                start = time.perf_counter()
                for image in images:
                    restorer.enhance(image)
                seconds[name].append(time.perf_counter() - start)
    rows = {name: {"s": round(statistics.median(s), 2), "faces_per_min": round(60 * faces / statistics.median(s), 1)}
            for name, s in seconds.items()}
    return {"photos": len(photos), "faces": faces, "fast_path": applied, "rows": rows}


def batch_scaling(args: argparse.Namespace) -> dict:
    model = load(args.backbone)
    applied = model.optimize_for_inference(args.precision)
    size = model.config.image_size
    gen = torch.Generator().manual_seed(0)
    refs = (torch.rand(4, 3, size, size, generator=gen) * 2 - 1).to(model.dtype)
    cache = model.encode_references(refs)
    batches = [int(b) for b in args.batches.split(",")]
    lqs = {b: (torch.rand(b, 3, size, size, generator=gen) * 2 - 1).to(model.dtype) for b in batches}
    for b in batches:
        model.restore(lqs[b], references=cache)  # warm-up
    per_face: dict[int, list[float]] = {b: [] for b in batches}
    for _ in range(args.repeats):
        for b in batches:
            start = time.perf_counter()
            model.restore(lqs[b], references=cache)
            per_face[b].append((time.perf_counter() - start) / b)
    one = statistics.median(per_face[batches[0]])
    return {"precision": applied, "rows": {b: {"s_per_face": round(statistics.median(v), 4),
                                               "vs_batch_1": round(statistics.median(v) / one, 3)}
                                           for b, v in per_face.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="shipped", help="'shipped' (the tiny model) or a backbone name")
    parser.add_argument("--realfaces", default=str(REALFACES))
    parser.add_argument("--people", type=int, default=4, help="CelebRef-HQ people in the album (besides obama)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--skip-folder", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    result = {"backbone": args.backbone, "threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()}
    if not args.skip_folder:
        result["folder"] = folder_rate(args)
    result["batch"] = batch_scaling(args)
    result["loadavg_end"] = os.getloadavg()
    print(f"{args.backbone} ({result['threads']} threads), load {result['loadavg_start'][0]:.2f} -> "
          f"{result['loadavg_end'][0]:.2f}")
    if "folder" in result:
        f = result["folder"]
        print(f"  folder: {f['photos']} photos, {f['faces']} faces, album warm")
        for name, row in f["rows"].items():
            print(f"    {name:12s} {row['s']:7.2f} s  {row['faces_per_min']:7.1f} faces/min")
    print(f"  one person's faces in one call ({result['batch']['precision']['precision']}):")
    for b, row in result["batch"]["rows"].items():
        print(f"    batch {b}: {row['s_per_face']:.4f} s per face ({row['vs_batch_1']:.2f}x batch 1)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
