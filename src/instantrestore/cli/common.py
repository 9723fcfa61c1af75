"""Argument helpers shared by sub-commands: model selection and device choice."""
from __future__ import annotations

import argparse

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="DIR_OR_HUB_ID",
                       help="trained checkpoint directory (config.json + safetensors); an official InstantRestore "
                            "file (.pt, or hf://hwdz15508/InstantRestore/final_model_ckpt.pt to download it; see "
                            "convert-official); or a diffusers base model (local directory or hub id, e.g. "
                            "stabilityai/sd-turbo) to start fresh adapters on")
    group.add_argument("--backbone", choices=["tiny", "sd-turbo"], default=None,
                       help="with no --checkpoint: build this architecture with RANDOM weights (a smoke test; "
                            "the output is not a restoration)")
    group.add_argument("--seed", type=int, default=0, help="seed for --backbone random weights")
    group.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1', ...")
    group.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                       help="compute precision (half precision on GPUs only)")
    group.add_argument("--trust-pickle", action="store_true",
                       help="allow loading pickle weight files (can run code; only for files you trust)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(args: argparse.Namespace):
    """The model the arguments ask for, on the chosen device and dtype, in eval mode."""
    from ..model import InstantRestore

    device, dtype = resolve_device(args.device), DTYPES[args.dtype]
    if args.checkpoint:
        from ..official import HF_PREFIX, resolve_checkpoint

        path = resolve_checkpoint(args.checkpoint)
        if args.checkpoint.startswith(HF_PREFIX) or (path.is_file() and path.suffix in (".pt", ".pth", ".ckpt", ".pkl")):
            # The authors' files are pickles of tensors only: read with weights_only, never --trust-pickle.
            return InstantRestore.from_official(path, device=device, dtype=dtype)
        return InstantRestore.from_pretrained(path, trust_pickle=args.trust_pickle, device=device, dtype=dtype)
    if args.backbone:
        return InstantRestore.from_config(args.backbone, seed=args.seed).to(device=device, dtype=dtype).eval()
    raise ValueError("no model chosen: pass --checkpoint DIR (a trained model) or --backbone tiny|sd-turbo "
                     "(random weights, for a smoke test)")
