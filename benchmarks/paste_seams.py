"""Face-shaped paste against the square paste on real photos: pixels changed outside the face, and seams.

Each photo of ``../shared/realfaces`` (obama/raw_photos and realworld_lq by default) is detected and
aligned (dlib), every face restored blind by the shipped tiny model (128 px; its faces mean nothing,
the paste geometry is what is measured), and pasted four ways with the same restored crops:

- ``main square x1``: the paste before this change (``faces.paste.paste_restored``: the aligned square,
  feathered, into the photo at its size);
- ``square x2`` / ``face x2``: ``PhotoPaste`` at --upscale 2 (Lanczos background) through the square or
  the face outline from the 68 landmarks (the new default);
- ``face x1``: the face outline at --upscale 1.

Per photo and way: ``outside``: share of the output's pixels that differ from the background path's output
(the input, or its Lanczos x2) outside the convex hull of the 68 landmarks (scaled to the output; the
face outline adds the forehead above it), ``outside outline``: the same outside the face outlines the
face paste uses, and ``changed``: share of all pixels that differ. Seam scores over the mask's feather band B (0 < alpha < 1)
and its interior I (alpha >= 0.999), with E = squared Sobel gradient of the output's grey levels:
``seam`` = mean_B E / mean_I E (the gradient energy across the border vs inside), and
``excess`` = mean_B E / mean_B E(background) (edges the paste added where it blends; 1 = none).
Faces over twice the model's side (refused by `restore` without --allow-small) are pasted here too.

    PYTHONPATH=src python benchmarks/paste_seams.py [--photos DIR ...] [--out results.json]
"""
from __future__ import annotations

import argparse
import os
import json
from pathlib import Path

import cv2
import numpy as np

REALFACES = Path(os.environ.get("INSTANTRESTORE_REALFACES",
                              Path(__file__).resolve().parents[2] / "shared" / "realfaces"))


def energy(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.Sobel(grey, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(grey, cv2.CV_32F, 0, 1) ** 2


def alpha_of(face, restored, upscale, mask, shape) -> np.ndarray:
    """The full-size blend mask of one paste (``faces.paste.paste_alpha``, placed in the photo)."""
    from instantrestore.faces.mask import face_polygon
    from instantrestore.faces.paste import paste_alpha, scale_matrix, soft_mask, upscale_points, upscaled_matrix

    side = restored.shape[0]
    matrix = upscaled_matrix(scale_matrix(face.matrix, face.size, side), upscale)
    if mask == "main":
        return soft_mask(matrix, side, shape)
    polygon = upscale_points(face_polygon(face.face.landmarks68), upscale) if mask == "face" else None
    (x0, y0, x1, y1), box = paste_alpha(matrix, side, polygon, shape)
    full = np.zeros(shape, np.float32)
    full[y0:y1, x0:x1] = box
    return full


def measure(paths: list[Path]) -> dict:
    from instantrestore.assets import load_shipped_model
    from instantrestore.faces.align import align_photo
    from instantrestore.faces.mask import face_polygon, inside_polygon
    from instantrestore.faces.paste import paste_restored, upscale_points
    from instantrestore.pipeline.face_paste import PhotoPaste
    from instantrestore.utils.images import load_image

    model = load_shipped_model()
    ways = {"main square x1": ("main", 1), "face x1": ("face", 1), "square x2": ("square", 2), "face x2": ("face", 2)}
    rows = []
    for path in paths:
        image = np.asarray(load_image(path))
        faces = align_photo(image, 512)
        if not faces:
            rows.append({"photo": path.name, "faces": 0})
            continue
        restored = [np.asarray(model.restore(f.crop, references=None)) for f in faces]
        row = {"photo": path.name, "size": list(image.shape[1::-1]), "faces": len(faces),
               "face_side": [round(float(f.size / np.sqrt(abs(np.linalg.det(f.matrix[:, :2])))), 1) for f in faces]}
        for name, (mask, upscale) in ways.items():
            paste = PhotoPaste(upscale, mask="square" if mask == "main" else mask)
            background = paste.background(image, upscale)
            if mask == "main":
                out = paste_restored(image, restored, [f.matrix for f in faces], [f.size for f in faces])
            else:
                out = background.copy()  # PhotoPaste.paste writes in place
                for f, crop in zip(faces, restored):
                    out = paste.paste(out, f, crop, {}, upscale)
            shape = out.shape[:2]
            hull = np.zeros(shape, np.uint8)
            for f in faces:
                points = upscale_points(f.face.landmarks68, upscale)
                cv2.fillConvexPoly(hull, cv2.convexHull(np.floor(points + 0.5).astype(np.int32)), 1)
            changed = (out != background).any(-1)
            outline = np.zeros(shape, bool)  # the outlines the face paste uses (forehead included)
            for f in faces:
                outline |= inside_polygon(upscale_points(face_polygon(f.face.landmarks68), upscale), shape)
            alpha = np.max([alpha_of(f, c, upscale, mask, shape) for f, c in zip(faces, restored)], axis=0)
            band, inner = (alpha > 0) & (alpha < 0.999), alpha >= 0.999
            e_out, e_bg = energy(out), energy(background)
            row[name] = {"outside": round(float((changed & (hull == 0)).mean()), 5),
                         "outside outline": round(float((changed & ~outline).mean()), 5),
                         "changed": round(float(changed.mean()), 5),
                         "seam": round(float(e_out[band].mean() / max(e_out[inner].mean(), 1e-6)), 3),
                         "excess": round(float(e_out[band].mean() / max(e_bg[band].mean(), 1e-6)), 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for name in ways:
        done = [r[name] for r in rows if name in r]
        summary[name] = {k: round(float(np.median([d[k] for d in done])), 4)
                         for k in ("outside", "outside outline", "changed", "seam", "excess")}
        summary[name]["max outside"] = max(d["outside"] for d in done)
    return {"photos": rows, "median over photos": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", type=Path,
                        default=[REALFACES / "obama" / "raw_photos", REALFACES / "realworld_lq"])
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    paths = sorted(p for d in args.photos for p in (d.iterdir() if d.is_dir() else [d])
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".jfif"))
    result = measure(paths)
    print(json.dumps(result["median over photos"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
