"""Where a trained tiny generator's output comes from: the VAE, the UNet step, the references.

Probes a model dir (default: the shipped model) on held-out synthetic people:

- latent RMS of the degraded input through the stage-2 VAE encoder (adapters on) and through the
  base encoder (adapters off; unit RMS after the autoencoder stage fitted its scale);
- the UNet step's share: mean |restoration - VAE round trip| (the round trip is the restoration
  with the UNet's noise prediction set to zero);
- the references' share: |eps(4 refs) - eps(blind)| / |eps(blind)| and mean |pixels(4 refs) -
  pixels(blind)|;
- the detail ceiling: the base VAE's round trip of the CLEAN photo - PSNR, marks present and
  iris-colour error, the best any restoration decoded by this VAE can do;
- whether the frozen reference branch's keys can find a face's parts (per injected layer): for
  each of the 68 landmarks in one clean photo, the key there is matched to the keys of another
  clean photo of the same person; ``nn_hit`` = how often the most similar key (cosine) lies within
  1.5 tokens of the same landmark (``chance``: the share of tokens that do), and ``self_query_mass``
  = the attention mass that key, used as the query at the layer's own temperature, puts there.
  High ``nn_hit`` with low ``self_query_mass`` means the keys hold the correspondence but plain
  dot-product attention does not pick it out until the queries learn to.

    python benchmarks/generator_probe.py                       # the shipped model, 16 people
    python benchmarks/generator_probe.py --model runs/synth/instantrestore/final --identities 48
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch


@torch.inference_mode()
def probe(model, identities: int, world_seed: int, style: str = "classic") -> dict[str, float]:
    from instantrestore.bench.cases import eye_color_error, make_cases, marks_present, to_uint8
    from instantrestore.utils.images import uint8_to_tensor
    from instantrestore.metrics.image import psnr
    from instantrestore.generator.adapters import adapters_disabled

    cases = make_cases(world_seed, identities, model.config.image_size, style=style)
    eps: list[torch.Tensor] = []
    hook = model.unet.register_forward_hook(lambda module, args, out: eps.append(out.sample))
    rms, rms_base, unet_share, eps_change, pixel_change = [], [], [], [], []
    psnrs, found, total, eye = [], 0, 0, []
    for case in cases:
        lq, refs = uint8_to_tensor(case.lq), uint8_to_tensor(case.refs)
        eps.clear()
        blind = model(lq).image
        with_refs = model(lq, references=refs).image  # eps[-1] is the generator pass, after the reference branch
        eps_blind, eps_refs = eps[0], eps[-1]
        rms.append(float(model.encode_latents(lq).pow(2).mean().sqrt()))
        unet_share.append(float((blind - model.autoencode(lq).clamp(-1, 1)).abs().mean()))
        eps_change.append(float((eps_refs - eps_blind).norm() / eps_blind.norm()))
        pixel_change.append(float((with_refs - blind).abs().mean()))
        with adapters_disabled(model.unet, model.vae):
            rms_base.append(float(model.encode_latents(lq).pow(2).mean().sqrt()))
            clean = to_uint8(model.autoencode(uint8_to_tensor(case.hq)).clamp(-1, 1))
        psnrs.append(float(psnr(clean, case.hq)[0]))
        f, t = marks_present(clean, case)
        found, total = found + f, total + t
        eye.append(eye_color_error(clean, case))
    hook.remove()
    return {"identities": identities, "latent_rms": float(np.mean(rms)), "latent_rms_base_encoder": float(np.mean(rms_base)),
            "unet_step_mean_abs_pixels": float(np.mean(unet_share)),
            "refs_relative_eps_change": float(np.mean(eps_change)),
            "refs_mean_abs_pixels": float(np.mean(pixel_change)),
            "vae_ceiling_psnr": float(np.mean(psnrs)), "vae_ceiling_marks_present": found / max(total, 1),
            "vae_ceiling_eye_color_error": float(np.nanmean(eye))}


@torch.inference_mode()
def key_correspondence(model, identities: int, world_seed: int, radius: float = 1.5,
                       style: str = "classic") -> dict[str, dict[str, float]]:
    """Per injected layer: nn_hit, chance and self_query_mass (see the module docstring)."""
    from instantrestore.bench.cases import make_cases, tokens_near
    from instantrestore.data.synthetic import NUM_IBUG
    from instantrestore.utils.images import uint8_to_tensor
    from instantrestore.generator.token_grid import containing_tokens, inside_image

    size = model.config.image_size
    sums: dict[str, np.ndarray] = {}
    for case in make_cases(world_seed, identities, size, style=style):
        src, dst = (lm[:NUM_IBUG] for lm in case.ref_landmarks[:2])
        usable = np.flatnonzero(inside_image(src, (size, size)) & inside_image(dst, (size, size)))
        keys_values, _ = model.reference_keys_values(uint8_to_tensor(case.refs[:2]))
        for name, (keys, _) in keys_values.items():
            tokens, channels = keys.shape[1:]
            grid = (int(round(tokens ** 0.5)),) * 2
            heads = model.unet.get_submodule(name).heads
            queries = torch.from_numpy(containing_tokens(src[usable], (size, size), grid))
            near = tokens_near(dst[usable], size, grid, radius)  # [P, L]
            unit = torch.nn.functional.normalize(keys.float(), dim=-1)
            best = (unit[0, queries] @ unit[1].T).argmax(-1).numpy()
            per_head = keys.float().view(2, tokens, heads, channels // heads).transpose(1, 2)  # [2, heads, L, d]
            logits = torch.einsum("hpd,hld->phl", per_head[0][:, queries], per_head[1]) / (channels // heads) ** 0.5
            mass = (logits.softmax(-1).mean(1) * torch.from_numpy(near)).sum(-1)
            row = [near[np.arange(len(usable)), best].sum(), near.mean(-1).sum(), float(mass.sum()), len(usable)]
            sums[name] = sums.get(name, np.zeros(4)) + np.array(row, dtype=float)
    return {name: {"nn_hit": float(v[0] / v[3]), "chance": float(v[1] / v[3]), "self_query_mass": float(v[2] / v[3])}
            for name, v in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model dir (default: the shipped tiny model)")
    parser.add_argument("--identities", type=int, default=16, help="held-out people probed")
    parser.add_argument("--world-seed", type=int, default=1000, help="world of the held-out people")
    args = parser.parse_args()
    from instantrestore.assets import load_shipped_model
    from instantrestore.generator.model import InstantRestore

    model = (InstantRestore.from_pretrained(args.model) if args.model else load_shipped_model()).eval()
    from instantrestore.bench.recipe import recorded_world_style

    style = recorded_world_style(args.model)
    result = probe(model, args.identities, args.world_seed, style)
    result["reference_keys"] = {name: {k: round(v, 4) for k, v in layer.items()}
                                for name, layer in key_correspondence(model, args.identities, args.world_seed, style=style).items()}
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
