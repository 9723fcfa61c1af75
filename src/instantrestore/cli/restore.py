"""`instantrestore restore` and `instantrestore info`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..files import clean_stale_temporaries, ensure_not_input, ensure_outside_inputs, list_images
from ..images import read_provenance, save_image
from .common import add_model_arguments, load_model, warn_kept

RESTORE_EPILOG = """examples:
  instantrestore restore face.png --refs ref1.png ref2.png --out restored.png --checkpoint runs/model
  instantrestore restore faces/ --refs album/ --out restored/ --checkpoint runs/model --save-cache album.refs
  instantrestore restore faces/ --refs-cache album.refs --out restored/ --checkpoint runs/model
Inputs are aligned square face crops (run `instantrestore align` on full photos first); they are
resized to the model's size. Existing outputs are skipped unless --overwrite, so a stopped folder
job resumes where it left off; each output records the model and references that made it, and one
made by another model or references (or a file restore did not write) is kept with a warning.
Inputs with no detectable face, and references that disagree or do not match the input, are
reported (--verify-refs strict refuses them). --out must lie outside the input folders."""

INFO_EPILOG = """examples:
  instantrestore info --backbone sd-turbo
  instantrestore info --checkpoint runs/sd-turbo/final"""


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


def _digest(tensors) -> str:
    """A short fingerprint of some tensors (sums and norms; enough to tell models / references apart)."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for t in tensors:
            t = t.detach().float()
            digest.update(torch.stack([t.sum(), torch.linalg.vector_norm(t)]).double().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def provenance(model, cache, path: Path) -> dict:
    """What makes an output: the model (base and trained weights), the encoded references, the input."""
    refs = "none" if cache is None else _digest(cache.keys[n] for n in sorted(cache.keys))
    return {"model": f"{model.weights_fingerprint()}-{_digest(model.adapter_state_dict().values())}",
            "references": refs, "input": path.name}


def _check_inputs(inputs: list[Path], mode: str) -> None:
    """Warn (or with --verify-refs strict refuse) inputs in which no face can be found."""
    import numpy as np

    from ..faces.verify import has_face
    from ..images import load_image

    faceless = [p for p in inputs if not has_face(np.asarray(load_image(p)))]
    if not faceless:
        return
    names = ", ".join(p.name for p in faceless[:5]) + (" ..." if len(faceless) > 5 else "")
    message = (f"no face found in {len(faceless)} input(s): {names}; restore expects aligned face crops "
               "(run `instantrestore align` on full photos first)")
    if mode == "strict":
        raise ValueError(message + " (refused: --verify-refs strict)")
    print(f"warning: {message}", file=sys.stderr)


def _verify_references(args, references: list[Path], inputs: list[Path]) -> None:
    """The `refs` check for restore: references show one person, with a face, matching each input."""
    import numpy as np

    from ..faces.identity import load_embedder
    from ..faces.verify import verify_references
    from ..images import load_image

    try:
        embedder = load_embedder(args.embedder)
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    refs = [np.asarray(load_image(p)) for p in references]
    names = [p.name for p in references]
    problems: list[str] = []
    for path in inputs[:MAX_VERIFIED_INPUTS]:
        report = verify_references(refs, names, lq=np.asarray(load_image(path)), embedder=embedder, mode="off",
                                   lq_name=path.name)
        problems += [line for line in report.problems() if line not in problems]
    if problems and args.verify_refs == "strict":
        raise ValueError("references refused (--verify-refs strict): " + "; ".join(problems))
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)


MAX_VERIFIED_INPUTS = 32  # the identity check embeds each input once; beyond this a big folder job would wait on it


def run_restore(args: argparse.Namespace) -> int:
    inputs = _expand(args.inputs)
    references = _expand(args.refs) if args.refs else []
    if args.refs_cache and references:
        raise ValueError("give either --refs or --refs-cache, not both")
    out = Path(args.out)
    outputs = _outputs(inputs, out)
    folders = [Path(p) for p in (args.inputs + (args.refs or [])) if Path(p).is_dir()]
    if len(outputs) > 1 or out.is_dir() or not out.suffix:
        ensure_outside_inputs(out, folders)
    for o in outputs:
        ensure_not_input(o, inputs + references)
    clean_stale_temporaries(outputs[0].parent, recursive=False)
    if args.verify_refs != "off":
        _check_inputs(inputs, args.verify_refs)
        if references:
            _verify_references(args, references, inputs)

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

    todo, kept_same, kept_other, kept_foreign = [], 0, [], []
    for path, o in zip(inputs, outputs):
        made = provenance(model, cache, path)
        if o.exists() and not args.overwrite:
            recorded = read_provenance(o)
            try:
                recorded = json.loads(recorded) if recorded else None
            except ValueError:
                recorded = None
            if recorded is None:
                kept_foreign.append(o.name)
            elif recorded != made:
                kept_other.append(o.name)
            else:
                kept_same += 1
            continue
        todo.append((path, o, made))
    if kept_same:
        print(f"skipping {kept_same} existing outputs (use --overwrite to redo them)", file=sys.stderr)
    warn_kept("restore", kept_other, kept_foreign, "made with another model, references or input", "redo them with this one")

    start = time.perf_counter()
    for path, o, made in tqdm(todo, desc="restoring", unit="face", disable=len(todo) < 2):
        save_image(model.restore(path, references=cache), o, provenance=json.dumps(made, sort_keys=True))
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
    full = ", ".join(f"{part} {name}" for part, names in (("UNet", cfg.unet_full_modules), ("VAE", cfg.vae_full_modules))
                     for name in names)
    print(f"trainable:         {sum(p.numel() for p in model.trainable_parameters()) / 1e6:.2f}M "
          f"(LoRA rank UNet {cfg.unet_lora_rank} / VAE {cfg.vae_lora_rank}" + (f"; in full: {full}" if full else "") + ")")
    print(f"profile:           {cfg.profile}" + (" (the authors' inference: docs/model.md)" if cfg.profile == "official" else ""))
    print(f"timestep:          {cfg.timestep} (training: {', '.join(map(str, cfg.train_timesteps))}); reference "
          f"branch {cfg.branch_timestep}" + (", noised" if cfg.reference_noise else ", noise-free"))
    print(f"attention:         {cfg.attention_mode}, AdaIN {'on' if cfg.adain else 'off'}")
    print(f"injected layers:   {len(model.injected_layers)}")
    for name in model.injected_layers:
        print(f"  {name}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
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
    restore.add_argument("--verify-refs", choices=("off", "warn", "strict"), default="warn",
                         help="check inputs show a face and references one person matching them: warn, refuse "
                              "(strict) or skip")
    restore.add_argument("--embedder", default="dlib", help="identity model for --verify-refs (see `refs --help`)")
    add_model_arguments(restore)
    restore.set_defaults(func=run_restore)

    info = subparsers.add_parser("info", help="print the backbone, parameter counts and injected layers",
                                 description="Build or load a model and print its backbone, image size, parameter "
                                             "counts, LoRA ranks, timestep, attention mode and the decoder "
                                             "self-attention layers that read the references.",
                                 epilog=INFO_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(info)
    info.set_defaults(func=run_info)
