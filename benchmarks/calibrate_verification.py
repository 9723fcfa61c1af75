"""Calibrate the reference check on real photos: dlib identity similarities (same person,
different people, degraded input vs its references) and the face-presence score, on the real
photos of ``INSTANTRESTORE_REALFACES`` (default ../shared/realfaces) plus noise and blank images.

    python benchmarks/calibrate_verification.py [--json out.json]

Prints each distribution (n, min, 5%, median, 95%, max) and the error rates of the thresholds
in faces/identity.py (DlibEmbedder.threshold) and faces/verify.py (FACE_SCORE_THRESHOLD,
lq margin). Results are in docs/bad_input.md.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

import numpy as np

from instantrestore.faces.detect import detect_faces
from instantrestore.faces.align import align_faces
from instantrestore.faces.identity import DlibEmbedder
from instantrestore.data.degradations import get_preset, random_degrade
from instantrestore.faces.verify import FACE_SCORE_THRESHOLD, LQ_MARGIN, aligned_face_score
from instantrestore.utils.files import list_images
from instantrestore.utils.images import load_image, uint8_to_tensor

ROOT = Path(os.environ.get("INSTANTRESTORE_REALFACES", Path(__file__).resolve().parents[2] / "shared" / "realfaces"))


def stats(values) -> dict:
    v = np.asarray(values, dtype=float)
    q = np.percentile(v, [0, 5, 50, 95, 100]) if len(v) else [np.nan] * 5  # -inf: no detection at all
    return {"n": int(len(values)), "min": q[0], "p5": q[1], "median": q[2], "p95": q[3], "max": q[4]}


def fake_images(rng: np.random.Generator, size: int = 512) -> dict[str, np.ndarray]:
    out = {}
    for i in range(4):
        out[f"noise_{i}"] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        out[f"smooth_noise_{i}"] = np.repeat(np.repeat(rng.integers(0, 256, (size // 32, size // 32, 3), dtype=np.uint8), 32, 0), 32, 1)
    for name, value in (("white", 255), ("black", 0), ("grey", 128)):
        out[name] = np.full((size, size, 3), value, np.uint8)
    out["gradient"] = np.repeat(np.linspace(0, 255, size, dtype=np.uint8)[None, :, None], size, 0).repeat(3, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    embedder = DlibEmbedder()
    people: dict[str, list[np.ndarray]] = {}
    degraded: dict[str, np.ndarray] = {}
    for folder in sorted((ROOT / "celebref").iterdir()):
        people[folder.name] = [np.asarray(load_image(p)) for p in list_images(folder / "references")]
        degraded[folder.name] = np.asarray(load_image(next(folder.glob("degraded_*.png"))))
    people["obama"] = [np.asarray(load_image(p)) for p in list_images(ROOT / "obama" / "aligned_references")]
    real_lq = []
    for p in list_images(ROOT / "realworld_lq"):
        image = np.asarray(load_image(p))
        faces = detect_faces(image)
        real_lq += [a.crop for a in align_faces(image, faces[:1], 512)]
    fakes = fake_images(np.random.default_rng(0))
    # the references degraded by the strongest presets (3 per person): inputs restore will see
    rng = np.random.default_rng(0)
    synth_lq = {(k, preset): [random_degrade(x, get_preset(preset), rng) for x in v[:3]]
                for k, v in people.items() for preset in ("paper", "sr8")}

    def embed(images):
        return embedder.embed(uint8_to_tensor(list(images))).numpy()

    emb = {k: embed(v) for k, v in people.items()}
    same = [float(a @ b) for e in emb.values() for a, b in itertools.combinations(e, 2)]
    diff = [float(a @ b) for (_, e1), (_, e2) in itertools.combinations(emb.items(), 2) for a in e1 for b in e2]
    centre = {k: e.mean(0) / np.linalg.norm(e.mean(0)) for k, e in emb.items()}
    lq_emb = {k: embed([v])[0] for k, v in degraded.items()}
    lq_same = [float(lq_emb[k] @ centre[k]) for k in degraded]
    lq_diff = [float(lq_emb[k] @ centre[o]) for k in degraded for o in centre if o != k]
    synth_emb = {key: embed(v) for key, v in synth_lq.items()}
    synth_same = [float(e @ centre[k]) for (k, _), es in synth_emb.items() for e in es]
    synth_diff = [float(e @ centre[o]) for (k, _), es in synth_emb.items() for e in es for o in centre if o != k]
    rw_emb = embed(real_lq) if real_lq else np.zeros((0, 128))
    rw_same = [float(e @ centre["obama"]) for e in rw_emb]
    rw_diff = [float(e @ centre[o]) for e in rw_emb for o in centre if o != "obama"]
    fake_emb = embed(fakes.values())
    fake_vs_people = [float(e @ c) for e in fake_emb for c in centre.values()]

    face_scores = {
        "clean references": [aligned_face_score(x) for v in people.values() for x in v],
        "degraded celebref": [aligned_face_score(x) for x in degraded.values()],
        "real-world LQ (aligned)": [aligned_face_score(x) for x in real_lq],
        "paper/sr8-degraded refs": [aligned_face_score(x) for v in synth_lq.values() for x in v],
        "noise / blank / gradient": [aligned_face_score(x) for x in fakes.values()],
    }
    report = {
        "cosine similarity": {
            "same person (reference pairs)": stats(same),
            "different people (reference pairs)": stats(diff),
            "degraded input vs own references' mean": stats(lq_same),
            "degraded input vs other people's mean": stats(lq_diff),
            "paper/sr8-degraded refs vs own mean": stats(synth_same),
            "paper/sr8-degraded refs vs other mean": stats(synth_diff),
            "real-world LQ vs own references' mean": stats(rw_same),
            "real-world LQ vs other people's mean": stats(rw_diff),
            "noise / blank vs people's mean": stats(fake_vs_people),
        },
        "face score": {k: stats(v) for k, v in face_scores.items()},
    }
    t, margin = DlibEmbedder.threshold, LQ_MARGIN
    rates = {
        f"same person rejected at {t}": float(np.mean(np.array(same) < t)),
        f"different people accepted at {t}": float(np.mean(np.array(diff) >= t)),
        f"degraded own rejected at {t - margin:.2f}": float(np.mean(np.array(lq_same + rw_same + synth_same) < t - margin)),
        f"degraded other accepted at {t - margin:.2f}": float(np.mean(np.array(lq_diff + rw_diff + synth_diff) >= t - margin)),
        f"faces missed at face score {FACE_SCORE_THRESHOLD}": float(np.mean(
            np.array(sum((face_scores[k] for k in list(face_scores)[:4]), [])) < FACE_SCORE_THRESHOLD)),
        f"noise / blank taken for faces at {FACE_SCORE_THRESHOLD}": float(np.mean(
            np.array(face_scores["noise / blank / gradient"]) >= FACE_SCORE_THRESHOLD)),
    }
    report["error rates"] = rates
    for section in ("cosine similarity", "face score"):
        print(f"{section}:")
        for name, s in report[section].items():
            print(f"  {name:42s} n={s['n']:4d} min {s['min']:.3f} p5 {s['p5']:.3f} median {s['median']:.3f} "
                  f"p95 {s['p95']:.3f} max {s['max']:.3f}")
    print("error rates:")
    for name, r in rates.items():
        print(f"  {name:46s} {r:.3f}")
    # raw values, to choose other thresholds
    report["raw"] = {"same": same, "diff": diff, "lq_same": lq_same + rw_same + synth_same, "lq_diff": lq_diff + rw_diff + synth_diff,
                     "fake": fake_vs_people, "face_scores": face_scores}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
