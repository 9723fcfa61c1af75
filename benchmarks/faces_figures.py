"""Figures quoted in docs/faces.md, measured on ../shared/realfaces (or $INSTANTRESTORE_REALFACES).

Run: PYTHONPATH=src python benchmarks/faces_figures.py
Prints alignment error against the FFHQ template, align -> paste PSNR inside the face,
detection time, and dlib identity similarities on the celebref identities.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from instantrestore.faces import (FFHQ_TEMPLATE_5_512, DlibEmbedder, align_face, aligned_landmarks, detect_faces,
                                  paste_face, soft_mask, template_points)
from instantrestore.utils.images import load_image, uint8_to_tensor

ROOT = Path(os.environ.get("INSTANTRESTORE_REALFACES", Path(__file__).resolve().parents[2] / "shared" / "realfaces"))


def alignment() -> None:
    print("photo    face_px  detect_s  template_err_px  paste_psnr_db")
    psnrs = []
    for path in sorted((ROOT / "obama" / "raw_photos").iterdir()):
        image = np.asarray(load_image(path))
        start = time.perf_counter()
        faces = detect_faces(image)
        seconds = time.perf_counter() - start
        aligned = align_face(image, faces[0])
        err = np.linalg.norm(template_points(aligned_landmarks(aligned.crop)) - FFHQ_TEMPLATE_5_512, axis=1).mean()
        pasted = paste_face(image, aligned.crop, aligned.matrix)
        inside = soft_mask(aligned.matrix, 512, image.shape[:2]) > 0.99
        mse = ((pasted.astype(np.float64) - image) ** 2)[inside].mean()
        psnrs.append(10 * np.log10(255 ** 2 / mse))
        print(f"{path.name:8} {faces[0].size:7.0f}  {seconds:8.2f}  {err:15.1f}  {psnrs[-1]:13.2f}  ({len(faces)} face)")
    print(f"paste PSNR: mean {np.mean(psnrs):.2f} dB, min {np.min(psnrs):.2f} dB")


def identity() -> None:
    embedder = DlibEmbedder()
    root = ROOT / "celebref"
    emb, raw, lq = {}, {}, {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        refs = [np.asarray(load_image(p)) for p in sorted((folder / "references").glob("*.png"))]
        raw[folder.name] = embedder.embed_raw(uint8_to_tensor(refs))
        emb[folder.name] = raw[folder.name] / raw[folder.name].norm(dim=1, keepdim=True)
        lq[folder.name] = embedder.embed(uint8_to_tensor([np.asarray(load_image(next(folder.glob("degraded_*"))))]))[0]
    same, diff, same_d, diff_d = [], [], [], []
    ids = sorted(emb)
    for a in ids:
        for b in ids:
            if a > b:
                continue
            sims = (emb[a] @ emb[b].T).numpy()
            dists = np.linalg.norm(raw[a][:, None] - raw[b][None], axis=-1)
            mask = np.triu(np.ones_like(sims, bool), 1) if a == b else np.ones_like(sims, bool)
            (same if a == b else diff).extend(sims[mask])
            (same_d if a == b else diff_d).extend(dists[mask])
    norms = np.concatenate([r.norm(dim=1).numpy() for r in raw.values()])
    n_refs = sum(len(e) for e in emb.values())
    print(f"celebref: {len(ids)} identities, {n_refs} references; raw descriptor norm {norms.mean():.3f} ± {norms.std():.3f}")
    print(f"cosine   same {np.mean(same):.3f} (min {np.min(same):.3f}, n={len(same)})   "
          f"different {np.mean(diff):.3f} (max {np.max(diff):.3f}, n={len(diff)})")
    print(f"euclid   same {np.mean(same_d):.3f} (max {np.max(same_d):.3f})   "
          f"different {np.mean(diff_d):.3f} (min {np.min(diff_d):.3f})")
    t = embedder.threshold
    print(f"at cos threshold {t}: same accepted {np.mean(np.array(same) >= t):.3f}, "
          f"different rejected {np.mean(np.array(diff) < t):.3f}")
    own = [float((emb[i] @ lq[i]).mean()) for i in ids]
    other = [float(max((emb[j] @ lq[i]).max() for j in ids if j != i)) for i in ids]
    print(f"degraded input vs own references: mean cos {np.mean(own):.3f} (min {np.min(own):.3f}); "
          f"best other identity's reference: {np.mean(other):.3f} (max {np.max(other):.3f})")


if __name__ == "__main__":
    if not ROOT.is_dir():
        sys.exit(f"{ROOT}: real photos not found (set INSTANTRESTORE_REALFACES)")
    alignment()
    identity()
