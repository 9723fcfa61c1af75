"""`instantrestore convert-official`: the authors' released checkpoint -> a safetensors folder."""
from __future__ import annotations

import argparse
import time

OFFICIAL_EPILOG = """examples:
  instantrestore convert-official hf://hwdz15508/InstantRestore/final_model_ckpt.pt --out models/instantrestore
  instantrestore convert-official final_model_ckpt.pt --out models/instantrestore
  instantrestore restore face.png --refs ref1.png ref2.png ref3.png ref4.png --out restored.png \\
      --checkpoint models/instantrestore
The released files are final_model_ckpt.pt (AdaIN + landmark attention loss, the paper's model),
lmattn_ablation_ckpt.pt, adain_ablation_ckpt.pt and base_ablation_ckpt.pt (training checkpoints,
which carry every weight), or a save_model adapter file (LoRA only; the base weights then come from
--base-model and --base-vae). The file is opened with torch.load(weights_only=True): only tensors
and plain values, never code. The folder it writes holds config.json + safetensors and restores
with no hub access, in the `official` profile (their exact inference: docs/model.md "Profiles")."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert-official", help="convert the authors' released checkpoint into a checkpoint folder",
        description="Convert an official InstantRestore checkpoint (snap-research/InstantRestore) into an "
                    "instantrestore checkpoint folder that --checkpoint reads.",
        epilog=OFFICIAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="the .pt file, or hf://OWNER/REPO/FILE to download it")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (must not exist or be empty)")
    p.add_argument("--base-model", metavar="DIR_OR_HUB_ID", default=None,
                   help="adapter files only: the SD-Turbo base (default stabilityai/sd-turbo)")
    p.add_argument("--base-vae", metavar="DIR_OR_HUB_ID", default=None,
                   help="adapter files only: the VAE base (default stabilityai/sd-vae-ft-mse)")
    p.add_argument("--text-encoder", metavar="DIR_OR_HUB_ID", default=None,
                   help="embed the prompt with this base's tokenizer and text encoder in fp32, exactly as the "
                        "authors' code (e.g. stabilityai/sd-turbo); default: an adapter file uses --base-model's, "
                        "a training checkpoint its own bf16 text encoder")
    p.add_argument("--adain", choices=["auto", "on", "off"], default="auto",
                   help="AdaIN in shared attention; auto = from the checkpoint's config (or the released file name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint folder at --out")
    p.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from ..official import convert_official, resolve_checkpoint

    start = time.perf_counter()
    path = resolve_checkpoint(args.checkpoint)
    print(f"reading {path} (memory-mapped; tensors only)")
    adain = {"auto": None, "on": True, "off": False}[args.adain]
    out = convert_official(path, args.out, overwrite=args.overwrite, base_model=args.base_model, base_vae=args.base_vae,
                           text_encoder=args.text_encoder, adain=adain)
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s; restore with --checkpoint {out}")
    return 0
