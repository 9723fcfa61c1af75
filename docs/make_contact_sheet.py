"""Regenerate docs/images/synthetic_contact_sheet.png:

    PYTHONPATH=src python docs/make_contact_sheet.py

Rows: identities 0-4 of seed 0. Columns: photos 0-4 at 128 px, then photo 0 after one ``sr8`` draw,
with the photo-0 mark landmarks circled on the clean image in the first column.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from instantrestore.data.synthetic import render, sample_identity
from instantrestore.degradations import random_degrade

OUT = Path(__file__).resolve().parent / "images" / "synthetic_contact_sheet.png"


def main(rows: int = 5, photos: int = 5, size: int = 128) -> None:
    lines = []
    for i in range(rows):
        ident = sample_identity(0, i)
        tiles = [render(ident, j, size).image for j in range(photos)]
        first = render(ident, 0, size)
        marked = tiles[0].copy()
        for x, y in first.landmarks[first.mark_slice]:
            cv2.circle(marked, (int(round(x * 4)), int(round(y * 4))), 5 * 4, (255, 255, 0), 1, cv2.LINE_AA, shift=2)
        tiles[0] = marked
        tiles.append(random_degrade(first.image, "sr8", np.random.default_rng(i)))
        lines.append(np.concatenate(tiles, 1))
    sheet = np.concatenate(lines, 0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
