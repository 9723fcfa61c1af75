"""Colour fix of restored faces (``faces.color``): colour error and identity with and without it.

The held-out synthetic people of the benchmark (``bench.cases.make_cases``: world seed 1000, the
shipped model's world style, ``sr8`` degradations) are restored by the shipped tiny model with their
4 references and blind; each output is then colour-fixed toward its degraded input ('wavelet',
'adain') or not ('none'). Measured against the ground truth, per method and mode (mean over people):

- ``color_err``: mean CIELAB distance (Delta E 76) between the ground truth and the output after a
  Gaussian blur of sigma ``size / 32`` (the low frequencies, where colour lives; L in 0..100);
- ``mean_color_err``: Delta E between the whole crops' mean colours (the overall cast);
- ``id_sim``: cosine similarity to the ground truth by the shipped evaluation identity network;
- ``psnr``: dB against the ground truth.

    PYTHONPATH=src python benchmarks/color_fix.py [--identities 16] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

METHODS = ("none", "wavelet", "adain")


def lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def color_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    sigma = pred.shape[0] / 32
    blur = lambda im: cv2.GaussianBlur(im.astype(np.float32), (0, 0), sigma)  # noqa: E731
    local = np.linalg.norm(lab(blur(pred)) - lab(blur(gt)), axis=-1).mean()
    mean = np.linalg.norm(lab(pred.reshape(-1, 1, 3).mean(0, keepdims=True)) -
                          lab(gt.reshape(-1, 1, 3).mean(0, keepdims=True)))
    return float(local), float(mean)


@torch.inference_mode()
def measure(identities: int) -> dict:
    from instantrestore.assets import load_shipped_eval_network, load_shipped_model, shipped_model_path
    from instantrestore.bench.cases import make_cases, to_uint8
    from instantrestore.bench.recipe import recorded_world_style
    from instantrestore.bench.synth import DEFAULT_WORLD_SEED, eval_embedder
    from instantrestore.faces.color import color_fix
    from instantrestore.faces.identity import cosine_similarity
    from instantrestore.metrics.image import psnr
    from instantrestore.utils.images import uint8_to_tensor

    model = load_shipped_model().eval()
    embed = eval_embedder(load_shipped_eval_network().eval()).embed
    style = recorded_world_style(shipped_model_path())
    cases = make_cases(DEFAULT_WORLD_SEED, identities, model.config.image_size, "sr8", style=style)
    sums: dict = {}
    for case in cases:
        lq = uint8_to_tensor(case.lq).to(model.device)
        gt_emb = embed(uint8_to_tensor(case.hq))
        outputs = {"blind": to_uint8(model(lq).image),
                   "refs": to_uint8(model(lq, references=uint8_to_tensor(list(case.refs)).to(model.device)).image)}
        for mode, restored in outputs.items():
            for method in METHODS:
                fixed = color_fix(restored, case.lq, method)
                local, mean = color_errors(fixed, case.hq)
                values = {"color_err": local, "mean_color_err": mean,
                          "id_sim": float(cosine_similarity(embed(uint8_to_tensor(fixed)), gt_emb)[0]),
                          "psnr": float(psnr(fixed, case.hq)[0])}
                row = sums.setdefault(f"{mode} {method}", {k: [] for k in values})
                for k, v in values.items():
                    row[k].append(v)
        local, mean = color_errors(case.lq, case.hq)
        row = sums.setdefault("degraded input", {"color_err": [], "mean_color_err": []})
        row["color_err"].append(local)
        row["mean_color_err"].append(mean)
    return {"identities": identities, "world_seed": DEFAULT_WORLD_SEED, "world_style": style,
            "rows": {name: {k: round(float(np.mean(v)), 4) for k, v in row.items()} for name, row in sums.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=16)
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    result = measure(args.identities)
    print(f"{'row':<16} {'color_err':>9} {'mean_err':>9} {'id_sim':>7} {'psnr':>6}")
    for name, row in result["rows"].items():
        print(f"{name:<16} {row['color_err']:>9.2f} {row['mean_color_err']:>9.2f} "
              f"{row.get('id_sim', float('nan')):>7.4f} {row.get('psnr', float('nan')):>6.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
