"""Reference strength sweep on the synthetic benchmark, and the calibration of ``auto`` strength.

Sweep: the shipped tiny model restores held-out synthetic people (``bench.cases``: photo 0
degraded by ``sr8``, photos 1-4 as references) blind and with 4 references at s = 0, 0.25, 0.5,
0.75, 1 and ``auto``; identity similarity (the shipped *evaluation* network), marks present,
eye-colour error and PSNR are measured as the benchmark measures them.

    python benchmarks/strength_sweep.py --identities 16 --out runs/strength_sweep.json
    python benchmarks/strength_sweep.py --calibrate      # estimate_degradation per degradation preset
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def calibrate(world_seed: int = 7, people: int = 32, size: int = 128) -> dict[str, dict[str, float]]:
    """Median fine-energy share and degradation estimate of synthetic faces, clean and under each preset."""
    from instantrestore.data import synthetic
    from instantrestore.data.degradations import PRESETS, random_degrade
    from instantrestore.pipeline.strength import estimate_degradation, fine_energy_share

    faces = [synthetic.render(synthetic.sample_identity(world_seed, i), 0, size).image for i in range(people)]
    table = {}
    for name in ("clean", *PRESETS):
        images = [f if name == "clean" else random_degrade(f, name, np.random.default_rng([world_seed, i]))
                  for i, f in enumerate(faces)]
        table[name] = {"fine_share": statistics.median(fine_energy_share(x) for x in images),
                       "degradation": statistics.median(estimate_degradation(x) for x in images)}
    return table


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def sweep(identities: int, preset: str, world_seed: int, device: str) -> dict:
    """Rows: blind, then 4 references at each strength and at ``auto``; metric means over people."""
    from instantrestore.assets import load_shipped_eval_network, load_shipped_model
    from instantrestore.bench.synth import eval_embedder

    # Loaded outside inference mode: parameters made there cannot be fingerprinted for reference caches.
    model = load_shipped_model(device=device).eval()
    embed = eval_embedder(load_shipped_eval_network(device=device).eval()).embed
    with torch.inference_mode():
        return _sweep(model, embed, identities, preset, world_seed)


def _sweep(model, embed, identities: int, preset: str, world_seed: int) -> dict:
    from instantrestore.bench.cases import eye_color_error, make_cases, marks_present, to_uint8
    from instantrestore.faces.identity import cosine_similarity
    from instantrestore.utils.images import uint8_to_tensor
    from instantrestore.metrics.image import psnr
    from instantrestore.pipeline.strength import auto_strength

    from instantrestore.bench.recipe import recorded_world_style

    # the shipped model's world (its training config records the style)
    cases = make_cases(world_seed, identities, model.config.image_size, preset, style=recorded_world_style(None))
    rows: dict[str, dict[str, list]] = {}
    settings = [("blind", None)] + [(f"4 refs, s={s:g}", s) for s in STRENGTHS] + [("4 refs, s=auto", "auto")]
    start = time.perf_counter()
    for case in tqdm(cases, desc="strength sweep", unit="person"):
        lq = uint8_to_tensor(case.lq).to(model.device)
        gt_emb = embed(uint8_to_tensor(case.hq))
        cache = model.encode_references(uint8_to_tensor(case.refs).to(model.device))
        for name, s in settings:
            acc = rows.setdefault(name, {"id_sim": [], "marks_found": [], "marks_total": [], "eye": [], "psnr": [],
                                         "strength": []})
            strength = auto_strength(case.lq) if s == "auto" else (1.0 if s is None else s)
            out = model(lq, references=None if s is None else cache, strength=strength).image
            image = to_uint8(out)
            found, total = marks_present(image, case)
            acc["id_sim"].append(float(cosine_similarity(embed(out.float().cpu()), gt_emb)[0]))
            acc["marks_found"].append(found)
            acc["marks_total"].append(total)
            acc["eye"].append(eye_color_error(image, case))
            acc["psnr"].append(float(psnr(image, case.hq)[0]))
            acc["strength"].append(0.0 if s is None else strength)
    table = []
    for name, acc in rows.items():
        table.append({"row": name, "strength": _mean(acc["strength"]), "id_sim": _mean(acc["id_sim"]),
                      "mark_recovery": sum(acc["marks_found"]) / max(1, sum(acc["marks_total"])),
                      "eye_color_error": _mean(acc["eye"]), "psnr": _mean(acc["psnr"]), "n": len(acc["id_sim"])})
    return {"settings": {"identities": identities, "preset": preset, "world_seed": world_seed,
                         "model": "shipped tiny-synth", "device": str(model.device),
                         "torch_threads": torch.get_num_threads(),
                         "seconds": round(time.perf_counter() - start, 1)},
            "rows": table}


def monotonic(values: list[float], increasing: bool = True) -> bool:
    """Whether ``values`` never step the wrong way."""
    pairs = list(zip(values, values[1:]))
    return all(b >= a for a, b in pairs) if increasing else all(b <= a for a, b in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=16, help="held-out synthetic people")
    parser.add_argument("--preset", default="sr8", help="degradation of the inputs")
    parser.add_argument("--world-seed", type=int, default=None, help="default: the benchmark's held-out world")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--calibrate", action="store_true", help="print estimate_degradation per preset instead")
    args = parser.parse_args()
    if args.calibrate:
        table = calibrate()
        for name, row in table.items():
            print(f"{name:9s} fine share {row['fine_share']:.3f}  degradation {row['degradation']:.2f}")
        result = {"calibration": table}
    else:
        from instantrestore.bench.synth import DEFAULT_WORLD_SEED

        result = sweep(args.identities, args.preset, args.world_seed or DEFAULT_WORLD_SEED, args.device)
        print(f"{'row':18s} {'s':>5s} {'id sim':>7s} {'marks':>6s} {'eye err':>8s} {'PSNR':>6s}")
        for row in result["rows"]:
            print(f"{row['row']:18s} {row['strength']:5.2f} {row['id_sim']:7.4f} {row['mark_recovery']:6.3f} "
                  f"{row['eye_color_error']:8.2f} {row['psnr']:6.2f}")
        swept = [r for r in result["rows"] if r["row"].startswith("4 refs, s=") and not r["row"].endswith("auto")]
        result["monotonic"] = {
            "id_sim_rising": monotonic([r["id_sim"] for r in swept]),
            "mark_recovery_rising": monotonic([r["mark_recovery"] for r in swept]),
            "eye_color_error_falling": monotonic([r["eye_color_error"] for r in swept], increasing=False)}
        print("monotonic in s:", ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in result["monotonic"].items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
