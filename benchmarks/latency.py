"""Latency and memory of restore vs plain one-step img2img, on the SD-Turbo architecture.

Random weights (no download needed); the cost of a forward pass does not depend on the
weights' values. All variants are timed interleaved in one run, and reported as ratios to
plain img2img, because this machine is noisy; absolute times are only meaningful on a GPU.

    python benchmarks/latency.py                 # 256 px, CPU, 3 repeats
    python benchmarks/latency.py --size 512 --device cuda --repeats 10                    # fp16 (auto)
    python benchmarks/latency.py --size 512 --device cuda --repeats 10 --precision bf16

``--precision`` (default auto: fp16 on CUDA, bf16 on CPUs with native bf16) is applied with
``optimize_for_inference`` (LoRA merged, channels-last); the plain img2img baseline stays fp32,
as a user would run diffusers' pipeline by default, and ``--plain-precision`` changes that.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch


def build(backbone: str, device: str, precision: str = "fp32"):
    from instantrestore import InstantRestore

    model = InstantRestore.from_config(backbone, seed=0).to(device).eval()
    model.optimize_for_inference(precision)
    return model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def latency(args) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    model = build(args.backbone, args.device, args.precision)
    dtype = model.dtype
    gen = torch.Generator().manual_seed(0)
    lq = (torch.rand(1, 3, args.size, args.size, generator=gen) * 2 - 1).to(args.device, dtype)
    refs = (torch.rand(4, 3, args.size, args.size, generator=gen) * 2 - 1).to(args.device, dtype)
    # what a user would otherwise run: diffusers' one-step img2img of the same backbone, no LoRA,
    # stock attention, in --plain-precision (fp32 unless told)
    plain_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.plain_precision]
    unet = UNet2DConditionModel.from_config(model.unet.config).to(args.device, plain_dtype).eval()
    vae = AutoencoderKL.from_config(model.vae.config).to(args.device, plain_dtype).eval()
    prompt = model.prompt_embeds.to(plain_dtype)
    scale = model.config.vae["scaling_factor"]

    def plain():
        with torch.inference_mode():
            latents = vae.encode(lq.to(plain_dtype)).latent_dist.mode() * scale
            t = torch.full((1,), model.config.timestep, device=args.device)
            eps = unet(latents, t, encoder_hidden_states=prompt).sample
            a = model.alphas_cumprod[t].view(-1, 1, 1, 1).to(plain_dtype)
            vae.decode((latents - (1 - a).sqrt() * eps) / a.sqrt() / scale)

    cache4 = model.encode_references(refs)
    variants = {
        "plain img2img": plain,
        "blind restore": lambda: model.restore(lq),
        "cached, 4 refs": lambda: model.restore(lq, references=cache4),
        "cold, 1 ref": lambda: model.restore(lq, references=refs[:1]),
        "cold, 4 refs": lambda: model.restore(lq, references=refs),
    }
    for fn in variants.values():  # warm-up
        fn()
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn, args.device))
    median = {name: statistics.median(v) for name, v in times.items()}
    base = median["plain img2img"]
    return {name: {"median_s": round(m, 4), "ms_per_face": round(m * 1000, 1), "ratio_to_plain": round(m / base, 3)}
            for name, m in median.items()}


class RssSampler:
    """Highest resident set size seen while the block runs (sampled every millisecond; Linux)."""

    def __init__(self) -> None:
        import os
        import threading

        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = self.now()

    def now(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def peak_memory_child(args) -> None:
    """Run in a subprocess: peak memory of one cold restore with --child-refs references."""
    import gc

    model = build(args.backbone, args.device, args.precision)
    gen = torch.Generator().manual_seed(0)
    lq = (torch.rand(1, 3, args.size, args.size, generator=gen) * 2 - 1).to(args.device, model.dtype)
    refs = (torch.rand(args.refs, 3, args.size, args.size, generator=gen) * 2 - 1).to(args.device, model.dtype)
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        model.restore(lq, references=refs)
        peak = torch.cuda.max_memory_allocated()
    else:
        with RssSampler() as sampler:
            before = sampler.peak
            model.restore(lq, references=refs)
        peak = sampler.peak
    print(json.dumps({"weights_bytes": before, "peak_bytes": peak}))


def peak_memory(args, n_refs: int) -> dict:
    cmd = [sys.executable, __file__, "--child-refs", str(n_refs), "--size", str(args.size), "--device", args.device,
           "--backbone", args.backbone, "--precision", args.precision]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="sd-turbo", choices=["sd-turbo", "tiny"])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="the restore's precision (optimize_for_inference)")
    parser.add_argument("--plain-precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="the plain img2img baseline's precision")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child-refs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_refs:
        args.refs = args.child_refs
        peak_memory_child(args)
        return
    torch.set_grad_enabled(False)
    result = {"backbone": args.backbone, "size": args.size, "device": args.device, "precision": args.precision,
              "plain_precision": args.plain_precision, "threads": torch.get_num_threads(),
              "latency": latency(args)}
    mem = {n: peak_memory(args, n) for n in (1, 8)}
    result["memory"] = {
        f"{n} refs": {"peak_MiB": round(m["peak_bytes"] / 2**20), "above_weights_MiB": round((m["peak_bytes"] - m["weights_bytes"]) / 2**20)}
        for n, m in mem.items()}
    result["memory"]["ratio_8_to_1"] = round(mem[8]["peak_bytes"] / mem[1]["peak_bytes"], 3)
    print(f"{args.backbone} at {args.size}px on {args.device} ({result['threads']} threads), restore in "
          f"{args.precision}, plain img2img in {args.plain_precision}, median of {args.repeats}:")
    for name, row in result["latency"].items():
        print(f"  {name:16s} {row['ratio_to_plain']:6.2f}x plain   ({row['ms_per_face']:.1f} ms)")
    for name, row in result["memory"].items():
        print(f"  memory {name}: {row}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
