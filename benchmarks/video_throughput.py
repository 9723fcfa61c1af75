"""Video throughput on a real clip with the shipped tiny model: frames/s per face and each part's share.

    python benchmarks/video_throughput.py --frames 60 --size 320x240 --json runs/video_throughput.json

Makes a pan/zoom clip over one raw obama photo (../shared/realfaces, or INSTANTRESTORE_REALFACES),
an album of obama's aligned references and one celebref person, warms the album's caches with one
untimed run, then times ``restore_video`` per part (decode, detect_track, restore, paste, encode) and
pass 1 alone with faces detected on every frame against every 3rd frame (the landmark difference
between the two says what skipping detection costs in alignment). The tiny model's faces mean nothing
on real frames: this measures the pipeline's cost, not a restoration.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="320x240", help="frame WIDTHxHEIGHT")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    from video_clips import pan_zoom, write_clip

    from instantrestore.assets import load_shipped_model
    from instantrestore.pipeline.album import Album
    from instantrestore.pipeline.face_restorer import FaceRestorer
    from instantrestore.pipeline.restore_video import PARTS, restore_video
    from instantrestore.pipeline.video_io import read_frames
    from instantrestore.pipeline.video_tracks import find_tracks
    from instantrestore.utils.images import load_image

    real = Path(os.environ.get("INSTANTRESTORE_REALFACES", Path(__file__).resolve().parents[2] / "shared" / "realfaces"))
    root = Path(tempfile.mkdtemp(prefix="video_throughput_"))
    for person, folder in (("obama", real / "obama" / "aligned_references"),
                           ("c00005", real / "celebref" / "00005" / "references")):
        (root / "album" / person).mkdir(parents=True)
        for photo in sorted(folder.glob("*.png")):
            (root / "album" / person / photo.name).symlink_to(photo)
    photo = np.asarray(load_image(real / "obama" / "raw_photos" / "o1.jpg"))
    src = write_clip(root / "clip.mp4", pan_zoom(photo, args.frames, (width, height)), args.frames, fps=25)
    restorer = FaceRestorer(load_shipped_model(), album=Album(root / "album"), k=4)
    restore_video(restorer, src, root / "warm.mp4")  # album caches and reference encoding, untimed
    out: dict = {"command": "python benchmarks/video_throughput.py " + f"--frames {args.frames} --size {args.size}",
                 "frames": args.frames, "size": [width, height]}
    start = time.perf_counter()
    report = restore_video(restorer, src, root / "out.mp4")
    wall = time.perf_counter() - start
    parts = report["seconds"]
    total = sum(parts.values())
    faces = report["faces_restored"]
    out["full"] = {"wall_s": round(wall, 2), "face_frames": faces, "face_frames_per_s": round(faces / wall, 2),
                   "parts_s": parts, "shares": {k: round(parts[k] / total, 3) for k in PARTS}}
    print(f"restore_video: {faces} face-frames in {wall:.1f} s = {faces / wall:.2f} face-frames/s")
    for k in PARTS:
        print(f"  {k:13s} {parts[k]:7.2f} s  {parts[k] / total:6.1%}")
    landmarks = {}
    for every in (1, 3):
        start = time.perf_counter()
        plans, _ = find_tracks(read_frames(src), restorer, detect_every=every)
        seconds = time.perf_counter() - start
        landmarks[every] = plans[0].landmarks
        out[f"pass1_detect_every_{every}"] = {"seconds": round(seconds, 2), "tracks": len(plans),
                                              "frames_per_s": round(args.frames / seconds, 2)}
        print(f"pass 1, detect every {every}: {seconds:.2f} s ({args.frames / seconds:.1f} frames/s), "
              f"{len(plans)} track(s)")
    n = min(len(landmarks[1]), len(landmarks[3]))
    gap = float(np.linalg.norm(landmarks[1][:n] - landmarks[3][:n], axis=-1).mean())
    out["landmark_gap_px_every3_vs_every1"] = round(gap, 3)
    print(f"smoothed landmarks, every 3rd frame vs every frame: {gap:.2f} px mean")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
