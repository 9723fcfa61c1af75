"""What a whole photo costs per face, against a bare ``restore`` of an aligned crop.

One real photo (default ``../shared/realfaces/obama/raw_photos/o8.png``, one face) goes through
``FaceRestorer.enhance`` with a warm album cache (the person's references aligned, embedded and
encoded once before timing), interleaved with a bare ``model.restore`` of that face's aligned crop
with the same cached references. Printed: per-face seconds of both, their ratio, and the share of
the whole-photo time in each step (the restorer's own clock: detect+align, embed+match, select,
cache lookup, restore, paste). Random weights: the cost does not depend on their values.

    PYTHONPATH=src python benchmarks/photo_cost.py                       # tiny backbone, CPU
    PYTHONPATH=src python benchmarks/photo_cost.py --backbone sd-turbo --device cuda --repeats 10
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REALFACES = Path(__file__).resolve().parents[2] / "shared" / "realfaces"
STEPS = ("detect_align", "embed_match", "select", "encode", "restore", "paste")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(args: argparse.Namespace) -> dict:
    from instantrestore import InstantRestore
    from instantrestore.pipeline.album import Album
    from instantrestore.pipeline.face_restorer import FaceRestorer
    from instantrestore.faces.align import align_photo
    from instantrestore.utils.images import load_image

    model = InstantRestore.from_config(args.backbone, seed=0).to(args.device).eval()
    photo = np.asarray(load_image(args.photo))
    with tempfile.TemporaryDirectory() as root:
        person = Path(root) / "album" / "person"
        person.mkdir(parents=True)
        for ref in sorted(Path(args.refs).iterdir())[:args.album_refs]:
            (person / ref.name).symlink_to(ref.resolve())
        album = Album(person.parent)
        restorer = FaceRestorer(model, album=album, k=args.k)
        _, report = restorer.enhance(photo)  # warms the album cache (align, embed, encode) and the model
        faces = len(report)
        if not faces or report[0]["restored"] != "references":
            raise SystemExit(f"{args.photo}: expected a face matched to the album, got {report.to_json()}")
        crop = align_photo(photo, album.crop_size)[0].crop
        cache = album.reference_cache("person", model).subset(list(range(min(args.k, len(album.references("person"))))))
        model.restore(crop, references=cache)

        whole, bare, steps = [], [], {s: [] for s in STEPS}
        for _ in range(args.repeats):  # interleaved: the machine's load drifts alike for both
            _sync(model.device)
            start = time.perf_counter()
            _, report = restorer.enhance(photo)
            _sync(model.device)
            whole.append((time.perf_counter() - start) / faces)
            for step in STEPS:
                steps[step].append(report.seconds.get(step, 0.0) / faces)
            start = time.perf_counter()
            model.restore(crop, references=cache)
            _sync(model.device)
            bare.append(time.perf_counter() - start)
        assert album.encodes == {"person": 1}, album.encodes  # every timed call used the warm cache
    whole_s, bare_s = statistics.median(whole), statistics.median(bare)
    shares = {s: statistics.median(v) / whole_s for s, v in steps.items()}
    return {"faces": faces, "whole_s": whole_s, "bare_s": bare_s, "shares": shares}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", choices=("tiny", "sd-turbo"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--photo", type=Path, default=REALFACES / "obama" / "raw_photos" / "o8.png")
    parser.add_argument("--refs", type=Path, default=REALFACES / "obama" / "aligned_references",
                        help="reference photos of the photo's person (the album)")
    parser.add_argument("--album-refs", type=int, default=6, help="how many of --refs go into the album")
    parser.add_argument("-k", type=int, default=4, help="references per face")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    r = measure(args)
    print(f"{args.backbone} on {args.device}, {args.photo.name}, {r['faces']} face(s), k={args.k}, "
          f"median of {args.repeats}")
    print(f"  whole photo, warm album cache: {r['whole_s']:.3f} s per face = "
          f"{r['whole_s'] / r['bare_s']:.2f}x a bare restore of the aligned crop ({r['bare_s']:.3f} s)")
    for step in STEPS:
        print(f"  {step:<13} {100 * r['shares'][step]:5.1f} %")
    other = 1 - sum(r["shares"].values())
    print(f"  {'other':<13} {100 * other:5.1f} %   (face bookkeeping, report, array copies)")


if __name__ == "__main__":
    main()
