"""The VAE decoder (or encoder) of the SD-Turbo architecture alone, run several ways side by side:
PyTorch fp32 (contiguous or channels-last), bf16 + channels-last, mixed precision (bf16 with the
last up block and the output layers in fp32), torch.compile (inductor), OpenVINO in fp32 or bf16
and ONNX Runtime (fp32), the last two when installed (neither is a dependency of the package).

Random weights (the cost does not depend on their values); one latent (or image) at ``--size``
px. Per variant: the setup time (cast, compile or convert), the median seconds of a call after a
warm-up, and the output's max abs difference and PSNR (on [-1, 1]) against the fp32 output.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/vae_backends.py --part decoder \
        --variants fp32,bf16-cl,mixed
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/vae_backends.py --variants fp32,openvino-bf16
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch
from torch import nn


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


def build(part: str, backbone: str) -> nn.Module:
    from diffusers import AutoencoderKL

    from instantrestore.generator.config import backbone_config

    torch.manual_seed(0)
    vae = AutoencoderKL(**backbone_config(backbone).vae).eval()
    return vae.decoder if part == "decoder" else vae.encoder


class OpenVINOModule:
    """``module`` converted to OpenVINO (its weights as they are now: a LoRA must be merged) and
    compiled for the CPU at the inference precision ``precision`` ("f32", "bf16")."""

    def __init__(self, module: nn.Module, example: torch.Tensor, precision: str) -> None:
        import openvino as ov

        converted = ov.convert_model(module, example_input=example)
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        self.compiled = ov.Core().compile_model(converted, "CPU", config)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.compiled(x.float().numpy())[0])


class OnnxRuntimeModule:
    """``module`` exported to ONNX and run by ONNX Runtime's CPU provider (fp32)."""

    def __init__(self, module: nn.Module, example: torch.Tensor) -> None:
        import tempfile

        import onnxruntime as ort

        path = os.path.join(tempfile.mkdtemp(), "part.onnx")
        torch.onnx.export(module, (example,), path, input_names=["x"], output_names=["y"], dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads would steal torch's cores
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(["y"], {"x": x.detach().float().contiguous().numpy()})[0])


def variant(module: nn.Module, name: str, example: torch.Tensor):
    """(callable taking the fp32 input, returning the fp32 output) for the variant ``name``."""
    from instantrestore.generator import inference

    if name == "fp32":
        return module
    if name.startswith("openvino"):
        return OpenVINOModule(module, example, {"openvino-fp32": "f32", "openvino-bf16": "bf16"}[name])
    if name == "onnxruntime":
        return OnnxRuntimeModule(module, example)
    model = copy.deepcopy(module)
    if name in ("fp32-cl", "compile-fp32-cl"):
        model.to(memory_format=torch.channels_last)
    if name in ("bf16-cl", "mixed", "compile-bf16"):
        model.to(torch.bfloat16, memory_format=torch.channels_last)
        if name == "mixed":  # the last up block and the output layers in fp32
            for late in (model.up_blocks[-1], model.conv_norm_out, model.conv_out):
                inference.keep_in_fp32(late, torch.bfloat16)
    if name.startswith("compile"):
        model = torch.compile(model)
    dtype = next(model.parameters()).dtype

    def run(x: torch.Tensor) -> torch.Tensor:
        return model(x.to(dtype)).float()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("decoder", "encoder"), default="decoder")
    parser.add_argument("--backbone", default="sd-turbo")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="fp32,bf16-cl,mixed",
                        help="fp32, fp32-cl, bf16-cl, mixed, compile-fp32, compile-fp32-cl, compile-bf16, openvino-fp32, openvino-bf16, onnxruntime")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    loadavg_start = os.getloadavg()
    module = build(args.part, args.backbone)
    gen = torch.Generator().manual_seed(0)
    if args.part == "decoder":
        factor = 2 ** (len(module.up_blocks) - 1)
        x = torch.randn(1, module.conv_in.in_channels, args.size // factor, args.size // factor, generator=gen)
    else:
        x = torch.rand(1, 3, args.size, args.size, generator=gen) * 2 - 1
    reference = module(x).float()
    runs, setup, first = {}, {}, {}
    for name in args.variants.split(","):
        start = time.perf_counter()
        runs[name] = variant(module, name, x)
        setup[name] = time.perf_counter() - start
        start = time.perf_counter()
        runs[name](x)  # warm-up (torch.compile compiles here)
        first[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            outputs[name] = fn(x)
            times[name].append(time.perf_counter() - start)
    rows = {}
    for name, t in times.items():
        out = outputs[name].float()
        if args.part == "decoder":  # the image, as the restore clamps it
            out, ref = out.clamp(-1, 1), reference.clamp(-1, 1)
        else:
            ref = reference
        rows[name] = {"s": round(statistics.median(t), 3), "setup_s": round(setup[name], 2),
                      "first_call_s": round(first[name], 2), "max_abs": float((out - ref).abs().max()),
                      "psnr_db": round(psnr(out, ref), 2)}
    print(f"{args.backbone} VAE {args.part} at {args.size} px, {torch.get_num_threads()} threads; "
          f"load {loadavg_start[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    for name, row in rows.items():
        print(f"  {name:14s} {row['s']:7.2f} s  ({row['s'] / rows[next(iter(rows))]['s']:.2f}x first)  setup "
              f"{row['setup_s']:6.1f} s  first call {row['first_call_s']:6.1f} s  max abs {row['max_abs']:.2e}  "
              f"PSNR {row['psnr_db']} dB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
