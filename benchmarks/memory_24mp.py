"""Peak memory of restoring a 24 MP photo at --upscale 2 (a 96 MP output), per background upsampler.

A 6000 x 4000 photo is made from a real one (``../shared/realfaces/obama/raw_photos/o8.png`` resized;
one large face) and restored by ``FaceRestorer.enhance(photo, upscale=2)`` with the shipped tiny
model, blind (no album). Each upsampler runs in its own process so each peak is its own; printed:
the process's peak resident memory (``ru_maxrss``) after loading the model and the photo, and after
``enhance``, the difference, the wall time and the output size.

- ``lanczos``: the classical default;
- ``model``: a stand-in super-resolution network (random weights, 3 convolutions of 32 channels and a
  x2 pixel shuffle; spandrel's loader is not needed to measure the tiling) run in tiles of ``--tile``.

    PYTHONPATH=src python benchmarks/memory_24mp.py [--tile 256] [--upsamplers lanczos model]
"""
from __future__ import annotations

import argparse
import os
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REALFACES = Path(os.environ.get("INSTANTRESTORE_REALFACES",
                              Path(__file__).resolve().parents[2] / "shared" / "realfaces"))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def one(upsampler: str, tile: int, photo_path: Path) -> dict:
    import cv2
    import numpy as np
    import torch

    from instantrestore.assets import load_shipped_model
    from instantrestore.pipeline.face_paste import PhotoPaste
    from instantrestore.pipeline.face_restorer import FaceRestorer
    from instantrestore.pipeline.upsample import ClassicalUpsampler, ModelUpsampler
    from instantrestore.utils.images import load_image

    model = load_shipped_model()
    photo = cv2.resize(np.asarray(load_image(photo_path)), (6000, 4000), interpolation=cv2.INTER_CUBIC)
    if upsampler == "model":
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Conv2d(32, 12, 3, padding=1), torch.nn.PixelShuffle(2),
                                  torch.nn.Sigmoid()).eval()
        background = ModelUpsampler(net, 2, "stand-in", tile=tile)
    else:
        background = ClassicalUpsampler(upsampler)
    before = peak_mib()
    start = time.perf_counter()
    out, report = FaceRestorer(model, paste=PhotoPaste(2, background)).enhance(photo)
    seconds = time.perf_counter() - start
    after = peak_mib()
    return {"upsampler": upsampler, "tile": tile if upsampler == "model" else None,
            "input": f"{photo.shape[1]}x{photo.shape[0]}", "output": f"{out.shape[1]}x{out.shape[0]}",
            "faces pasted": report.restored, "peak MiB before enhance": round(before),
            "peak MiB after enhance": round(after), "enhance adds MiB": round(after - before),
            "output array MiB": round(out.nbytes / 2 ** 20), "seconds": round(seconds, 1),
            "seconds per step": {k: round(v, 2) for k, v in report.seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upsamplers", nargs="+", default=["lanczos", "model"])
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--photo", type=Path, default=REALFACES / "obama" / "raw_photos" / "o8.png")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.tile, args.photo)))
        return
    for name in args.upsamplers:
        run = subprocess.run([sys.executable, __file__, "--one", name, "--tile", str(args.tile), "--photo",
                              str(args.photo)], capture_output=True, text=True, check=True)
        print(run.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
