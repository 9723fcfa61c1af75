"""`instantrestore restore` and `instantrestore info`."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..files import ensure_not_input, list_images
from ..images import save_image
from .common import add_model_arguments, load_model

RESTORE_EPILOG = """examples:
  instantrestore restore face.png --refs ref1.png ref2.png --out restored.png --checkpoint runs/model
  instantrestore restore faces/ --refs album/ --out restored/ --checkpoint runs/model --save-cache album.refs
  instantrestore restore faces/ --refs-cache album.refs --out restored/ --checkpoint runs/model
Inputs are aligned square face crops (run `instantrestore align` on full photos first); they are
resized to the model's size. Existing outputs are skipped unless --overwrite, so a stopped folder
job resumes where it left off."""


def _expand(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise FileNotFoundError(f"{path}: folder has no images")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def _outputs(inputs: list[Path], out: Path) -> list[Path]:
    if len(inputs) == 1 and out.suffix:
        return [out]
    if out.suffix and not out.is_dir():
        raise ValueError(f"--out {out} looks like a file, but there are {len(inputs)} inputs; give a folder")
    names = [p.stem for p in inputs]
    if len(set(names)) != len(names):
        return [out / f"{p.parent.name}_{p.stem}.png" for p in inputs]
    return [out / f"{p.stem}.png" for p in inputs]


def run_restore(args: argparse.Namespace) -> int:
    inputs = _expand(args.inputs)
    references = _expand(args.refs) if args.refs else []
    if args.refs_cache and references:
        raise ValueError("give either --refs or --refs-cache, not both")
    outputs = _outputs(inputs, Path(args.out))
    for out in outputs:
        ensure_not_input(out, inputs + references)
    todo = [(i, o) for i, o in zip(inputs, outputs) if args.overwrite or not o.exists()]
    if len(todo) < len(inputs):
        print(f"skipping {len(inputs) - len(todo)} existing outputs (use --overwrite to redo them)", file=sys.stderr)

    model = load_model(args)
    cache = None
    if args.refs_cache:
        from ..reference_cache import ReferenceCache

        cache = ReferenceCache.load(args.refs_cache, device=model.device)
    elif references:
        cache = model.encode_references(references)
    if args.save_cache:
        if cache is None:
            raise ValueError("--save-cache needs --refs")
        cache.save(args.save_cache)
        print(f"saved {len(cache)} encoded references to {args.save_cache}", file=sys.stderr)
    if cache is None:
        print("no references given: blind restoration", file=sys.stderr)

    start = time.perf_counter()
    for path, out in tqdm(todo, desc="restoring", unit="face", disable=len(todo) < 2):
        save_image(model.restore(path, references=cache), out)
    if todo:
        per = (time.perf_counter() - start) / len(todo)
        print(f"restored {len(todo)} face(s) with {len(cache) if cache else 0} reference(s), "
              f"{per:.3f} s per face on {model.device}", file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..adapters import is_adapter_param

    model = load_model(args)
    count = lambda module: sum(p.numel() for n, p in module.named_parameters() if not is_adapter_param(n))  # noqa: E731
    cfg = model.config
    print(f"backbone:          {cfg.backbone}" + (f" (base weights: {cfg.base_model})" if cfg.base_model else ""))
    print(f"image size:        {cfg.image_size} px (sides must be multiples of {model.size_multiple})")
    print(f"UNet parameters:   {count(model.unet) / 1e6:.1f}M")
    print(f"VAE parameters:    {count(model.vae) / 1e6:.1f}M")
    print(f"trainable:         {sum(p.numel() for p in model.trainable_parameters()) / 1e6:.2f}M "
          f"(LoRA rank UNet {cfg.unet_lora_rank} / VAE {cfg.vae_lora_rank}, VAE encoder conv_in)")
    print(f"timestep:          {cfg.timestep} (training: {', '.join(map(str, cfg.train_timesteps))})")
    print(f"attention:         {cfg.attention_mode}, AdaIN {'on' if cfg.adain else 'off'}")
    print(f"injected layers:   {len(model.injected_layers)}")
    for name in model.injected_layers:
        print(f"  {name}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    restore = subparsers.add_parser("restore", help="restore aligned face crops, optionally with reference photos",
                                    description="Restore degraded, aligned face crops in one forward pass, using "
                                                "reference photos of the same person when given.",
                                    epilog=RESTORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    restore.add_argument("inputs", nargs="+", metavar="LQ", help="degraded face crop(s) or folder(s)")
    restore.add_argument("--refs", nargs="+", metavar="REF", help="reference photos or folders of the same person")
    restore.add_argument("--refs-cache", metavar="FILE", help="reuse references encoded earlier with --save-cache")
    restore.add_argument("--save-cache", metavar="FILE", help="write the encoded references for later runs")
    restore.add_argument("--out", required=True, help="output file (one input) or folder")
    restore.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    add_model_arguments(restore)
    restore.set_defaults(func=run_restore)

    info = subparsers.add_parser("info", help="print the backbone, parameter counts and injected layers",
                                 formatter_class=fmt)
    add_model_arguments(info)
    info.set_defaults(func=run_info)
