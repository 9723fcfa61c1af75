"""The before/after pictures of docs/images/paste_*.png: one real photo, its face restored blind by the
shipped tiny model (128 px, trained on synthetic faces only: the face it draws means nothing on a real
photo; where it goes and how it blends is what the picture shows), pasted at --upscale 2 three ways.

Panels, each the region around the face at the output's scale: the input (enlarged, nearest), the
square paste of before this change (``faces.paste.paste_restored`` at upscale 1, enlarged, nearest),
and the face-shaped paste over the Lanczos x2 background (the new default). Also writes the whole
before/after at a small size.

    PYTHONPATH=src python benchmarks/paste_figure.py --photo ../shared/realfaces/obama/raw_photos/o8.png \
        --out docs/images
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

REALFACES = Path(os.environ.get("INSTANTRESTORE_REALFACES",
                              Path(__file__).resolve().parents[2] / "shared" / "realfaces"))


def label(image: np.ndarray, text: str) -> np.ndarray:
    canvas = Image.fromarray(np.concatenate([np.full((16, image.shape[1], 3), 255, np.uint8), image]))
    ImageDraw.Draw(canvas).text((3, 2), text, fill=(0, 0, 0))
    return np.asarray(canvas)


def main() -> None:
    from instantrestore.assets import load_shipped_model
    from instantrestore.faces.align import align_photo
    from instantrestore.faces.paste import paste_restored
    from instantrestore.pipeline.face_paste import PhotoPaste, side_by_side
    from instantrestore.utils.images import load_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=REALFACES / "obama" / "raw_photos" / "o8.png")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--panel", type=int, default=256, help="side of each panel in the figure")
    args = parser.parse_args()
    image = np.asarray(load_image(args.photo))
    model = load_shipped_model()
    face = align_photo(image, 512)[0]
    restored = np.asarray(model.restore(face.crop, references=None))
    old = paste_restored(image, [restored], [face.matrix], [face.size])
    paste = PhotoPaste(2)
    new = paste.paste(paste.background(image, 2), face, restored, {}, 2)  # in place, on the new background
    x0, y0, x1, y1 = face.face.box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.1 * max(x1 - x0, y1 - y0)
    box = [int(max(0, v)) for v in (cx - half, cy - half, cx + half, cy + half)]

    def region(im, scale):
        cut = im[box[1] * scale:box[3] * scale, box[0] * scale:box[2] * scale]
        return cv2.resize(cut, (args.panel, args.panel), interpolation=cv2.INTER_AREA)

    panels = [label(region(cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST), 2), "input"),
              label(region(cv2.resize(old, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST), 2), "before: square"),
              label(region(new, 2), "now: face outline, x2")]
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(panels, axis=1)).save(args.out / "paste_face_vs_square.png", optimize=True)
    whole = side_by_side(image, new)
    scale = 768 / whole.shape[1]
    small = cv2.resize(whole, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    Image.fromarray(small).save(args.out / "paste_before_after.png", optimize=True)
    for name in ("paste_face_vs_square.png", "paste_before_after.png"):
        print(args.out / name, (args.out / name).stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()
