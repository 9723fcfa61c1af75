"""Identity matching on degraded real faces: right person / wrong person / blind, per degradation
level, face size and album size, for the matching rule before (one mean identity per person at
the 0.92 threshold) and after (``pipeline.album_match``: per-reference scores, a margin over the
second-best person, both rising with the estimated degradation, spurious detections screened).

    OMP_NUM_THREADS=1 python benchmarks/album_matching.py --out /tmp/album_matching
    OMP_NUM_THREADS=1 python benchmarks/album_matching.py --out /tmp/album_matching --seed 1
    python benchmarks/album_matching.py --embedder onnx:arcface.onnx ...   # another embedder
    python benchmarks/album_matching.py --strength-tradeoff 16             # what reduced strength does

People: the 8 CelebRef-HQ identities and obama of ``INSTANTRESTORE_REALFACES`` (default
../shared/realfaces), read in place (nothing is copied). Each person's album holds their first
``--refs`` aligned photos; every other photo of theirs is a probe, shrunk to each ``--sizes`` side
(the face's crop in a photo), degraded by each level and treated as a whole photo, as ``restore``
does: detect, align to 512, screen the detections, embed, estimate the degradation. The real
degraded CelebRef inputs are a level of their own. Albums: every ``n`` of the 9 people for each
``--albums`` size; a probe whose person is in the album should be matched right, one whose person
is not should be left blind. The per-probe embeddings are cached under ``--out`` (``--fresh``
recomputes). Levels: ``light`` is ``moderate`` with at most 2x downsampling, blur sigma <= 1.5,
noise <= 4 and JPEG >= 70 (composed with ``get_preset``); ``moderate``, ``sr4``, ``sr8`` are the
presets of ``data/degradations.py``.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch

from instantrestore.data.degradations import get_preset, random_degrade
from instantrestore.faces.align import align_photo
from instantrestore.faces.detect import canonical_box
from instantrestore.faces.identity import load_embedder
from instantrestore.faces.verify import screen_detections
from instantrestore.pipeline.album_match import decide_match, person_scores, rule_for
from instantrestore.pipeline.strength import estimate_degradation
from instantrestore.utils.files import list_images
from instantrestore.utils.images import load_image, uint8_to_tensor

ROOT = Path(os.environ.get("INSTANTRESTORE_REALFACES", Path(__file__).resolve().parents[2] / "shared" / "realfaces"))
LEVELS = {"light": get_preset("moderate", name="light", sigma_range=(0.1, 1.5), scale_range=(1.0, 2.0),
                              noise_range=(0.0, 4.0), jpeg_range=(70, 100)),
          "moderate": get_preset("moderate"), "sr4": get_preset("sr4"), "sr8": get_preset("sr8")}
REAL = "celebref"  # the real degraded CelebRef inputs (their clean versions are no reference)
OLD_THRESHOLD = 0.92  # the former rule: cosine to the mean identity >= the embedder's threshold


def people(root: Path) -> dict[str, list[Path]]:
    """person -> aligned 512 px photos, in a fixed order (celebref by number)."""
    out = {f.name: sorted(list_images(f / "references"), key=lambda p: int(p.stem))
           for f in sorted((root / "celebref").iterdir()) if f.is_dir()}
    out["obama"] = sorted(list_images(root / "obama" / "aligned_references"))
    return out


def probe_faces(photo: np.ndarray, embedder) -> list[dict]:
    """``restore``'s steps up to the match on one photo: every detection, whether it is the photo's face
    (its centre inside the box alignment puts a face in), why the screen drops it, embedding, degradation."""
    aligned = align_photo(photo, 512)
    reasons = screen_detections([a.face for a in aligned], [a.crop for a in aligned])
    x0, y0, x1, y1 = canonical_box(photo.shape[1], photo.shape[0])
    out = []
    for a, reason in zip(aligned, reasons):
        bx = a.face.box
        cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
        out.append({"true": bool(x0 <= cx <= x1 and y0 <= cy <= y1), "dropped": reason,
                    "box": [round(v, 1) for v in bx], "detector": a.face.detector,
                    "degradation": estimate_degradation(a.crop),
                    "embedding": embedder.embed(uint8_to_tensor(a.crop))[0].tolist()})
    return out


def collect(root: Path, embedder, refs: int, sizes: list[int], seed: int) -> dict:
    """Album reference embeddings and every probe's faces (see the module docstring)."""
    album, probes = {}, []
    for pi, (person, files) in enumerate(people(root).items()):
        crops = [np.asarray(load_image(p)) for p in files]
        album[person] = embedder.embed(uint8_to_tensor(crops[:refs])).tolist()
        for ii, crop in enumerate(crops[refs:]):
            for size in sizes:
                small = crop if size == crop.shape[0] else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
                for li, (level, preset) in enumerate(LEVELS.items()):
                    photo = random_degrade(small, preset, np.random.default_rng([seed, pi, ii, size, li]))
                    probes.append({"person": person, "photo": files[refs + ii].name, "size": size, "level": level,
                                   "faces": probe_faces(photo, embedder)})
        print(f"  {person}: {len(files) - refs} held-out photos", flush=True)
    for folder in sorted((root / "celebref").iterdir()):
        lq = np.asarray(load_image(next(folder.glob("degraded_*.png"))))
        for size in sizes:
            photo = lq if size == lq.shape[0] else cv2.resize(lq, (size, size), interpolation=cv2.INTER_AREA)
            probes.append({"person": folder.name, "photo": "degraded", "size": size, "level": REAL,
                           "faces": probe_faces(photo, embedder)})
    return {"album": album, "probes": probes}


def old_rule(embedding: np.ndarray, centres: dict[str, np.ndarray], threshold: float) -> str | None:
    """The former decision: the person whose mean identity is closest, when it reaches ``threshold``."""
    sims = {p: float(c @ embedding) for p, c in centres.items()}
    best = max(sims, key=lambda p: (sims[p], p))
    return best if sims[best] >= threshold else None


def evaluate(data: dict, album_sizes: list[int], threshold: float, rule) -> dict:
    """Counts per (rule, album size, level, face size, outcome) over every album of each size."""
    album = {p: torch.tensor(e) for p, e in data["album"].items()}
    names = list(album)
    centres = {p: torch.nn.functional.normalize(e.mean(0), dim=0).numpy() for p, e in album.items()}
    counts: Counter = Counter()
    for probe in data["probes"]:
        key = (probe["level"], probe["size"])
        for face in probe["faces"]:
            emb = np.asarray(face["embedding"], np.float32)
            scores = person_scores(torch.from_numpy(emb), album)
            face["_scores"], face["_emb"] = scores, emb
        for n in album_sizes:
            for members in itertools.combinations(names, n):
                inside = probe["person"] in members
                for name in ("before", "after"):
                    faces = probe["faces"] if name == "before" else [f for f in probe["faces"] if not f["dropped"]]
                    for face in faces:
                        if name == "before":
                            who = old_rule(face["_emb"], {p: centres[p] for p in members}, threshold)
                            scale = 1.0
                        else:
                            m = decide_match({p: face["_scores"][p] for p in members}, rule, face["degradation"])
                            who, scale = m.person, m.strength_scale
                        if not face["true"]:
                            counts[(name, n, *key, "spurious restored")] += 1
                            counts[(name, n, *key, "wrong")] += who is not None
                            continue
                        outcome = "blind" if who is None else "right" if who == probe["person"] else "wrong"
                        counts[(name, n, *key, ("in " if inside else "out ") + outcome)] += 1
                        counts[(name, n, *key, "wrong")] += outcome == "wrong"
                        counts[(name, n, *key, "reduced")] += outcome == "right" and scale < 1
                    if not any(f["true"] for f in faces):
                        counts[(name, n, *key, "in missed" if inside else "out missed")] += 1
                    counts[(name, n, *key, "in" if inside else "out")] += 1
    return counts


def _count(counts: Counter, name: str, n: int | None, level: str, size: int | None, what: str) -> int:
    return sum(v for k, v in counts.items() if k[0] == name and (n is None or k[1] == n) and k[2] == level
               and (size is None or k[3] == size) and k[4] == what)


def wrong_table(counts: Counter, album_sizes: list[int]) -> list[str]:
    """Markdown: wrong-person restorations before -> after per level and album size (every face, whether
    its person is in the album or not), and spurious detections restored."""
    lines = ["| level | " + " | ".join(f"album {n}" for n in album_sizes) + " | spurious detections restored |",
             "|" + " --- |" * (2 + len(album_sizes))]
    for level in [*LEVELS, REAL]:
        wrong = {(name, n): _count(counts, name, n, level, None, "wrong") for name in ("before", "after")
                 for n in album_sizes}
        cells = [f"{wrong['before', n]} -> **{wrong['after', n]}**" for n in album_sizes]
        spurious = [_count(counts, name, album_sizes[-1], level, None, "spurious restored")
                    for name in ("before", "after")]
        lines.append(f"| {level} | " + " | ".join(cells) + f" | {spurious[0]} -> {spurious[1]} |")
    return lines


def right_table(counts: Counter, n: int, sizes: list[int]) -> list[str]:
    """Markdown: faces whose person is in an album of ``n``: right / blind / missed (no face kept), before
    -> after, per level and face size."""
    lines = ["| level | face px | right, before -> after | blind, before -> after | missed | reduced strength |",
             "| --- | --- | --- | --- | --- | --- |"]
    for level in [*LEVELS, REAL]:
        for size in [*sizes, None]:
            total = _count(counts, "after", n, level, size, "in")
            if not total:
                continue

            def pct(name, what):
                return f"{100 * _count(counts, name, n, level, size, 'in ' + what) / total:.0f}%"
            right = _count(counts, "after", n, level, size, "in right")
            lines.append(f"| {level} | {size or 'all'} | {pct('before', 'right')} -> **{pct('after', 'right')}** | "
                         f"{pct('before', 'blind')} -> {pct('after', 'blind')} | {pct('after', 'missed')} | "
                         f"{_count(counts, 'after', n, level, size, 'reduced')} of {right} |")
    return lines


def tradeoff(identities: int, out: Path) -> None:
    """What a reduced strength costs a right match and saves a wrong one: the shipped tiny model on held-out
    synthetic people (``sr8``), blind and with 4 right or 4 wrong references at s = 0.5 and 1; identity
    similarity (the shipped evaluation network) to the true person and to the references' owner."""
    from instantrestore.assets import load_shipped_eval_network, load_shipped_model
    from instantrestore.bench.cases import make_cases
    from instantrestore.bench.recipe import recorded_world_style
    from instantrestore.bench.synth import DEFAULT_WORLD_SEED, eval_embedder

    model = load_shipped_model(device="cpu").eval()
    embed = eval_embedder(load_shipped_eval_network(device="cpu").eval()).embed
    cases = make_cases(DEFAULT_WORLD_SEED, identities, model.config.image_size, "sr8", style=recorded_world_style(None))
    rows: dict[str, list[tuple[float, float]]] = {}
    with torch.inference_mode():
        for case in cases:
            lq, true_e, owner_e = (uint8_to_tensor(x) for x in (case.lq, case.hq, case.wrong_hq))
            true_e, owner_e = embed(true_e), embed(owner_e)

            def sims(image):
                e = embed(image.float().cpu())
                return float(torch.cosine_similarity(e, true_e)[0]), float(torch.cosine_similarity(e, owner_e)[0])
            rows.setdefault("blind", []).append(sims(model(lq, references=None).image))
            for kind, refs in (("right", case.refs), ("wrong", case.wrong_refs)):
                cache = model.encode_references(uint8_to_tensor(refs))
                for s in (0.5, 1.0):
                    rows.setdefault(f"4 {kind} refs, s={s:g}", []).append(sims(model(lq, references=cache,
                                                                                  strength=s).image))
    lines = ["| row | sim to the true person | sim to the references' owner |", "| --- | --- | --- |"]
    lines += [f"| {name} | {np.mean([v[0] for v in vals]):.3f} | {np.mean([v[1] for v in vals]):.3f} |"
              for name, vals in rows.items()]
    print("\n".join(lines))
    out.mkdir(parents=True, exist_ok=True)
    (out / "strength-tradeoff.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the real photos (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "album_matching")
    parser.add_argument("--embedder", default="dlib")
    parser.add_argument("--refs", type=int, default=4, help="album photos per person")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 256, 128], help="face crop sides")
    parser.add_argument("--albums", type=int, nargs="+", default=[1, 5, 8, 9], help="album sizes")
    parser.add_argument("--seed", type=int, default=0, help="degradation draws")
    parser.add_argument("--fresh", action="store_true", help="recompute the cached embeddings")
    parser.add_argument("--strength-tradeoff", type=int, metavar="N", default=0,
                        help="instead: N synthetic people restored with right / wrong references at s = 0.5, 1")
    args = parser.parse_args()
    if args.strength_tradeoff:
        return tradeoff(args.strength_tradeoff, args.out)
    embedder = load_embedder(args.embedder)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(json.dumps([embedder.name, args.refs, args.sizes, args.seed]).encode()).hexdigest()[:10]
    cache = args.out / f"probes-{tag}.json"
    start = time.perf_counter()
    if cache.is_file() and not args.fresh:
        data = json.loads(cache.read_text())
    else:
        print(f"embedding the probes ({embedder.name}, seed {args.seed}) ...", flush=True)
        data = collect(args.root, embedder, args.refs, args.sizes, args.seed)
        cache.write_text(json.dumps(data))
    rule = rule_for(embedder.name, embedder.threshold)
    counts = evaluate(data, args.albums, embedder.threshold if embedder.name != "dlib" else OLD_THRESHOLD, rule)
    decisions = {n: sum(1 for _ in itertools.combinations(data["album"], n)) for n in args.albums}
    report = [f"{len(data['probes'])} probe photos of {len(data['album'])} people, {args.refs} album photos each; "
              f"embedder {embedder.name}; seed {args.seed}; {rule}",
              "albums: " + ", ".join(f"{k} of size {n}" for n, k in decisions.items()), "",
              "## wrong-person restorations, before -> after (summed over every album of a size)", ""]
    report += wrong_table(counts, args.albums) + [""]
    open_set = [n for n in args.albums if n < len(data["album"])]  # albums some probes' people are not in
    for n in sorted({max(args.albums), *open_set[-1:]}):
        report += [f"## faces whose person is in the album, albums of {n}", ""]
        report += right_table(counts, n, args.sizes) + [""]
    faces = Counter((p["level"], "spurious" if not f["true"] else "face", "dropped" if f["dropped"] else "kept")
                    for p in data["probes"] for f in p["faces"])
    report += ["detections: " + ", ".join(f"{k[0]} {k[1]} {k[2]}: {v}" for k, v in sorted(faces.items())),
               f"({time.perf_counter() - start:.0f} s)"]
    print("\n".join(report))
    (args.out / f"report-{tag}.md").write_text("\n".join(report) + "\n")
    (args.out / f"counts-{tag}.json").write_text(json.dumps({"|".join(map(str, k)): v for k, v in counts.items()}))


if __name__ == "__main__":
    main()
