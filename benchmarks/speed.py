"""Where the time of a restore goes, how close it runs to the machine's limit, and what each
speed lever buys (time and output difference), all measured side by side in one run.

For a cached 4-reference restore on the SD-Turbo architecture (random weights: the cost does not
depend on their values) this prints:

- the machine's measured matrix-multiply peak (GFLOP/s) for fp32 and bf16 on this run's threads;
- per part (VAE encode, UNet with shared attention, VAE decode; the reference branch cold) the
  median seconds, the FLOPs (``torch.utils.flop_counter``) and the achieved fraction of peak;
- per variant (LoRA merged, bf16, channels-last, decoder in fp32, ...) the median seconds, the
  ratio to the fp32 unmerged restore and to stock diffusers one-step img2img in fp32 (a fresh
  UNet and VAE with no LoRA and stock attention, through ``StableDiffusionImg2ImgPipeline``),
  and the output's max abs difference and PSNR against the fp32 unmerged output.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/speed.py --size 512 --repeats 2
    PYTHONPATH=src python benchmarks/speed.py --backbone tiny --size 128     # a quick check
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n matrix product in ``dtype``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


class PartClock:
    """Forward hooks timing (or counting the FLOPs of) the VAE encoder, the UNet and the VAE decoder."""

    PARTS = ("vae_encode", "unet", "vae_decode")

    def __init__(self, model, count_flops: bool = False) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        self.model, self.seconds, self.flops = model, {p: 0.0 for p in self.PARTS}, {p: 0 for p in self.PARTS}
        self._handles, self._started, self._counter = [], {}, None
        modules = {"vae_encode": model.vae.encoder, "unet": model.unet, "vae_decode": model.vae.decoder}
        for part, module in modules.items():
            self._handles.append(module.register_forward_pre_hook(self._pre(part, count_flops, FlopCounterMode)))
            self._handles.append(module.register_forward_hook(self._post(part, count_flops)))

    def _pre(self, part, count_flops, mode_cls):
        def hook(module, args):
            if count_flops:
                self._counter = mode_cls(display=False)
                self._counter.__enter__()
            sync(self.model.device)
            self._started[part] = time.perf_counter()
        return hook

    def _post(self, part, count_flops):
        def hook(module, args, output):
            sync(self.model.device)
            self.seconds[part] += time.perf_counter() - self._started.pop(part)
            if count_flops:
                self._counter.__exit__(None, None, None)
                self.flops[part] += self._counter.get_total_flops()
        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def stock_img2img(model, device: torch.device):
    """diffusers' one-step img2img of the same backbone, fp32, no LoRA, stock attention: what a user
    would otherwise run (SD-Turbo's recipe: 2 steps at strength 0.5 = one UNet call, no guidance)."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(model.unet.config).to(device).eval()
    vae = AutoencoderKL.from_config(model.vae.config).to(device).eval()
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                          scheduler=EulerAncestralDiscreteScheduler.from_config({"timestep_spacing": "trailing"}),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompt = model.prompt_embeds.float().to(device)

    def run(image: torch.Tensor):
        return pipe(prompt_embeds=prompt, image=(image.float() + 1) / 2, num_inference_steps=2, strength=0.5,
                    guidance_scale=0.0, output_type="pt").images
    return run


def build_variant(base, name: str, size: int):
    """A copy of ``base`` with the levers named in ``name`` ("bf16+merged+cl+dec32", "fp32+merged+cl+ort"), applied as
    every command applies them (``inference.optimize``)."""
    from instantrestore.generator import inference

    model = copy.deepcopy(base)
    levers = set(name.split("+"))
    precision = next((p for p in ("bf16", "fp16") if p in levers), "fp32")
    inference.optimize(model, precision, merge="merged" in levers, channels_last="cl" in levers,
                       fp32_decoder=next((part for lever, part in (("dec32", "all"), ("last32", "last"),
                                                                   ("tail32", "tail")) if lever in levers), "none"))
    if "ort" in levers:  # the (merged) decoder exported to ONNX Runtime: measured, not shipped
        from vae_backends import OnnxRuntimeModule

        decoder = copy.deepcopy(model.vae.decoder).float()
        factor = 2 ** (len(decoder.up_blocks) - 1)
        runner = OnnxRuntimeModule(decoder, torch.zeros(1, decoder.conv_in.in_channels, size // factor, size // factor))
        model.vae.decoder.forward = lambda z, *args, **kwargs: runner(z).to(z.dtype)
    return model


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="sd-turbo")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="fp32+merged,fp32+merged+cl,bf16+merged,bf16+merged+cl,bf16+merged+cl+dec32",
                        help="comma-separated levers joined by '+': fp32|bf16|fp16, merged, cl (channels-last), dec32 (VAE "
                             "decoder fp32), last32 (its last up block and output layers fp32), tail32 (its output layers fp32), "
                             "ort (the VAE decoder in ONNX Runtime, fp32; benchmarks/vae_backends.py)")
    parser.add_argument("--no-stock", action="store_true", help="skip diffusers' img2img")
    parser.add_argument("--no-unmerged", action="store_true",
                        help="do not time the fp32 unmerged restore (its output is still the reference)")
    parser.add_argument("--no-parts", action="store_true",
                        help="skip the per-part timing of the fp32 unmerged restore and the cold reference branch's FLOPs")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    from instantrestore import InstantRestore

    load = {"loadavg_start": os.getloadavg()}
    start = time.perf_counter()
    base = InstantRestore.from_config(args.backbone, seed=0).to(device).eval()
    load["build_random_s"] = round(time.perf_counter() - start, 2)
    # peft starts LoRA's B at zero; give the adapters a real update so that merged vs unmerged
    # compares something
    for name, param in base.named_parameters():
        if "lora_B" in name:
            param.normal_(0.0, 0.02, generator=torch.Generator().manual_seed(len(name)))
    gen = torch.Generator().manual_seed(0)
    lq = (torch.rand(1, 3, args.size, args.size, generator=gen) * 2 - 1).to(device)
    refs = (torch.rand(4, 3, args.size, args.size, generator=gen) * 2 - 1).to(device)
    result: dict = {"backbone": args.backbone, "size": args.size, "device": str(device),
                    "threads": torch.get_num_threads(), "machine": load}
    # a reduced-precision peak only where a variant uses it (emulated bf16 takes minutes here)
    result["peak_gflops"] = {"fp32": round(matmul_peak(torch.float32, device))}
    if "bf16" in args.variants:
        result["peak_gflops"]["bf16"] = round(matmul_peak(torch.bfloat16, device))

    # reference branch (cold): time and FLOPs
    from torch.utils.flop_counter import FlopCounterMode

    sync(device)
    start = time.perf_counter()
    cache = base.encode_references(refs)
    sync(device)
    ref_seconds = time.perf_counter() - start
    ref_flops = 0
    if not args.no_parts:
        with FlopCounterMode(display=False) as counter:
            base.encode_references(refs)
        ref_flops = counter.get_total_flops()

    # per part of the cached restore, fp32 unmerged
    clock = PartClock(base, count_flops=True)
    reference_out = base.restore(lq, references=cache)
    flops = dict(clock.flops)
    clock.close()
    part_seconds = {p: [] for p in PartClock.PARTS}
    for _ in range(0 if args.no_parts else args.repeats):
        clock = PartClock(base)
        base.restore(lq, references=cache)
        clock.close()
        for p in PartClock.PARTS:
            part_seconds[p].append(clock.seconds[p])
    peak = result["peak_gflops"]["fp32"]
    parts = {}
    for p in PartClock.PARTS:
        s = statistics.median(part_seconds[p]) if part_seconds[p] else float("nan")
        parts[p] = {"s": round(s, 3), "gflop": round(flops[p] / 1e9, 1), "gflops": round(flops[p] / s / 1e9, 1),
                    "of_peak": round(flops[p] / s / 1e9 / peak, 3)}
    parts["reference_branch_cold_4"] = {"s": round(ref_seconds, 3), "gflop": round(ref_flops / 1e9, 1),
                                        "gflops": round(ref_flops / ref_seconds / 1e9, 1),
                                        "of_peak": round(ref_flops / ref_seconds / 1e9 / peak, 3)}
    result["parts_fp32"] = parts
    total_flops = sum(flops.values())

    # variants, interleaved with the fp32 baseline and stock img2img
    runs = {} if args.no_unmerged else {"fp32 (unmerged)": lambda m=base: m.restore(lq, references=cache)}
    models = {}
    for name in [v for v in args.variants.split(",") if v]:
        model = models[name] = build_variant(base, name, args.size)
        # a merged model's branch runs the base weights: in fp32 the cache encoded before still fits
        variant_cache = cache if model.dtype == base.dtype else model.encode_references(refs.to(model.dtype))
        runs[name] = (lambda m=model, c=variant_cache: m.restore(lq.to(m.dtype), references=c))
    if not args.no_stock:
        stock = stock_img2img(base, device)
        runs["stock img2img fp32"] = lambda: stock(lq)
    outputs = {name: fn() for name, fn in runs.items()}  # warm-up, and the outputs compared
    outputs["fp32 (unmerged)"] = reference_out
    times = {name: [] for name in runs}
    variant_parts: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            model = models.get(name, base if name == "fp32 (unmerged)" else None)
            clock = PartClock(model) if model is not None else None
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
            if clock is not None:
                clock.close()
                for part, s in clock.seconds.items():
                    variant_parts.setdefault(name, {}).setdefault(part, []).append(s)
    med = {name: statistics.median(t) for name, t in times.items()}
    base_s = med.get("fp32 (unmerged)", float("nan"))
    stock_s = med.get("stock img2img fp32")
    rows = {}
    for name, s in med.items():
        row = {"s": round(s, 3), "vs_fp32": round(s / base_s, 3)}
        if stock_s:
            row["vs_stock"] = round(s / stock_s, 3)
        if name != "stock img2img fp32":
            out = outputs[name].float()
            row["max_abs"] = float((out - reference_out.float()).abs().max())
            row["psnr_db"] = round(psnr(out, reference_out), 2)
            dtype = next(iter(models[name].unet.parameters())).dtype if name in models else torch.float32
            row["of_peak"] = round(total_flops / s / 1e9 / result["peak_gflops"]["bf16" if dtype == torch.bfloat16 else "fp32"], 3)
        if name in variant_parts:
            row["parts_s"] = {part: round(statistics.median(v), 3) for part, v in variant_parts[name].items()}
        rows[name] = row
    result["variants"] = rows
    result["machine"]["loadavg_end"] = os.getloadavg()

    print(f"{args.backbone} at {args.size}px on {device} ({result['threads']} threads); matmul peak "
          + ", ".join(f"{k} {v} GFLOP/s" for k, v in result["peak_gflops"].items()) + "; "
          f"load {load['loadavg_start'][0]:.2f} -> {result['machine']['loadavg_end'][0]:.2f}")
    for name, row in parts.items():
        print(f"  part {name:24s} {row['s']:8.3f} s  {row['gflop']:8.1f} GFLOP  {row['gflops']:7.1f} GFLOP/s  {row['of_peak']:.0%} of fp32 peak")
    for name, row in rows.items():
        extra = f"  max abs {row['max_abs']:.2e}  PSNR {row['psnr_db']} dB  {row['of_peak']:.0%} of peak" if "max_abs" in row else ""
        print(f"  {name:30s} {row['s']:8.3f} s  {row['vs_fp32']:5.2f}x fp32  "
              f"{row.get('vs_stock', float('nan')):5.2f}x stock{extra}")
        if "parts_s" in row:
            print("      " + ", ".join(f"{part} {s:.3f} s" for part, s in row["parts_s"].items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
