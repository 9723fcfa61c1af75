"""Quick check of whether a model's output depends on its references: blind, the oracle reference
(the ground truth re-rendered with jitter), 4 references and 4 wrong references on held-out people
of the tuning world - PSNR, marks present and eye-colour error per row. A few minutes cheaper than
`instantrestore bench synth` (no identity network, no attention capture); used while tuning the
tiny recipe (docs/benchmark.md, "What each recipe change bought").

    python benchmarks/reference_probe.py runs/synth/instantrestore/final
    python benchmarks/reference_probe.py runs/synth/instantrestore/checkpoints/step_0000100 --identities 16
    python benchmarks/reference_probe.py runs/synth/prior/final --prior   # a prior: concat attention, adapters off
"""
from __future__ import annotations

import argparse
import contextlib

import numpy as np
import torch


@torch.inference_mode()
def probe(model, identities: int, world_seed: int, style: str, prior: bool) -> dict[str, tuple[float, float, float]]:
    """Row name -> (PSNR dB, marks present fraction, eye-colour error), means over the people."""
    from instantrestore.generator.adapters import adapters_disabled
    from instantrestore.bench.cases import eye_color_error, make_cases, marks_present, to_uint8
    from instantrestore.utils.images import uint8_to_tensor as t
    from instantrestore.metrics.image import psnr

    cases = make_cases(world_seed, identities, model.config.image_size, style=style)
    options = {"attention_mode": "concat"} if prior else {}
    rows = {"input": lambda c: t(c.lq), "blind": lambda c: model(t(c.lq)).image,
            "oracle": lambda c: model(t(c.lq), references=t(c.oracle_ref), **options).image,
            "4 refs": lambda c: model(t(c.lq), references=t(c.refs), **options).image,
            "4 wrong refs": lambda c: model(t(c.lq), references=t(c.wrong_refs), **options).image}
    out = {}
    with adapters_disabled(model.unet, model.vae) if prior else contextlib.nullcontext():
        for name, run in rows.items():
            psnrs, found, total, eyes = [], 0, 0, []
            for case in cases:
                image = to_uint8(run(case))
                psnrs.append(float(psnr(image, case.hq)[0]))
                f, n = marks_present(image, case)
                found, total = found + f, total + n
                eyes.append(eye_color_error(image, case))
            out[name] = (float(np.mean(psnrs)), found / max(total, 1), float(np.mean(eyes)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model dir (a final/ or checkpoints/step_N/ folder)")
    parser.add_argument("--identities", type=int, default=16, help="held-out people")
    parser.add_argument("--world-seed", type=int, default=2000, help="world of the people (2000 = the tuning world)")
    parser.add_argument("--world-style", default="detail", help="classic or detail")
    parser.add_argument("--prior", action="store_true", help="probe a stage-1 prior: adapters off, concat attention")
    args = parser.parse_args()
    from instantrestore.generator.model import InstantRestore

    model = InstantRestore.from_pretrained(args.model).eval()
    for name, (p, marks, eye) in probe(model, args.identities, args.world_seed, args.world_style, args.prior).items():
        print(f"{name:13s} PSNR {p:6.2f} dB   marks present {marks:6.1%}   eye colour err {eye:6.1f}")


if __name__ == "__main__":
    main()
