"""`instantrestore restore` and `instantrestore info`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..pipeline.face_restorer import check_strength_setting
from ..utils.files import clean_stale_temporaries, ensure_not_input, ensure_outside_inputs, list_images
from ..utils.images import read_provenance, save_image
from ..generator.fingerprints import model_fingerprint, tensors_digest
from ..pipeline.restore_photos import output_paths, plan, restore_photo, summarize
from ..pipeline.restore_photos import provenance as photo_provenance
from .common import add_model_arguments, load_model, warn_kept

RESTORE_EPILOG = """examples:
  instantrestore restore photos/ --album album/ --out restored/ --checkpoint runs/model
  instantrestore restore photo.jpg --album album/ --out restored/ --strength auto --before-after
  accelerate launch --num_processes 2 -m instantrestore restore photos/ --album album/ --out restored/ ...
  instantrestore restore face.png --refs ref1.png ref2.png --out restored.png --checkpoint runs/model
  instantrestore restore faces/ --aligned --refs album/person/ --out restored/ --save-cache person.refs ...
Whole photos (the default): every face is detected, aligned, matched to a person of --album
(album/<person>/*.jpg, whole photos or aligned crops), restored with that person's best -k
references and pasted back; OUT/NAME.png is the photo (pixels outside the faces unchanged),
OUT/NAME.json its report (faces, boxes, matched person and similarity, references used, strength,
what fell back and why). A face that matches no one is restored blind or kept (--unknown). The
album's aligned references and encoded keys/values are cached in album/.instantrestore-cache/.
Aligned crops (--aligned, implied by --refs / --refs-cache): every input is one face crop,
restored with the same references, or blind.
Existing outputs are skipped unless --overwrite, so a stopped job resumes where it left off; each
output records the model, references or album and settings that made it, and one made otherwise
(or a file restore did not write) is kept with a warning. Under `accelerate launch` the photos
are shared between the processes, each writing its own. --out must lie outside the input folders."""

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


def provenance(model, cache, path: Path, strength: float | str = 1.0) -> dict:
    """What makes an output: the model (base and trained weights), the encoded references, the input
    (and the strength, when not the default, so outputs made before strength existed still match)."""
    refs = "none" if cache is None else tensors_digest(cache.keys[n] for n in sorted(cache.keys))
    made = {"model": model_fingerprint(model), "references": refs, "input": path.name}
    if strength != 1.0:
        made["strength"] = strength
    return made


def _check_inputs(inputs: list[Path], mode: str) -> None:
    """Warn (or with --verify-refs strict refuse) inputs in which no face can be found."""
    import numpy as np

    from ..faces.verify import has_face
    from ..utils.images import load_image

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
    from ..utils.images import load_image

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


PHOTO_FLAGS = {"album": "--album", "unknown": "--unknown", "select_refs": "-k/--select-refs",
               "before_after": "--before-after"}
CROP_FLAGS = {"refs": "--refs", "refs_cache": "--refs-cache", "save_cache": "--save-cache"}


def restore_mode(args: argparse.Namespace) -> str:
    """'photos' (whole photos, the default) or 'aligned' (aligned crops: --aligned, --refs, --refs-cache);
    refuses flags of the other mode with the fix."""
    photo = [flag for name, flag in PHOTO_FLAGS.items() if getattr(args, name)]
    crop = [flag for name, flag in CROP_FLAGS.items() if getattr(args, name)]
    if photo and (crop or args.aligned):
        given = ", ".join(crop + (["--aligned"] if args.aligned else []))
        raise ValueError(f"{', '.join(photo)} restore whole photos (each face with its own album person's "
                         f"references), {given} aligned crops with one set of references; use one or the other")
    return "aligned" if crop or args.aligned else "photos"


def run_restore(args: argparse.Namespace) -> int:
    check_strength_setting(args.strength)
    if restore_mode(args) == "photos":
        return run_photos(args)
    return run_aligned(args)


def run_aligned(args: argparse.Namespace) -> int:
    """Aligned face crops, all with the same references (or blind)."""
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
        from ..generator.reference_cache import ReferenceCache

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
        made = provenance(model, cache, path, args.strength)
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
        strength = 1.0 if cache is None or args.strength == 1.0 else _crop_strength(args.strength, path)
        save_image(model.restore(path, references=cache, strength=strength), o,
                   provenance=json.dumps(made, sort_keys=True))
    if todo:
        per = (time.perf_counter() - start) / len(todo)
        print(f"restored {len(todo)} face(s) with {len(cache) if cache else 0} reference(s), "
              f"{per:.3f} s per face on {model.device}", file=sys.stderr)
    return 0


def _crop_strength(strength: float | str, path: Path) -> float:
    """The strength for one aligned crop ('auto' looks at the crop)."""
    import numpy as np

    from ..utils.images import load_image
    from ..pipeline.strength import resolve_strength

    return float(resolve_strength(strength, np.asarray(load_image(path))))


def run_photos(args: argparse.Namespace) -> int:
    """Whole photos: every face matched to the album, restored with its person's references, pasted back."""
    import warnings

    from ..pipeline.album import Album
    from ..pipeline.face_restorer import FaceRestorer
    from ..faces.identity import load_embedder
    from ..faces.verify import ReferenceWarning
    from ..pipeline.sharding import current_shard

    photos = _expand(args.inputs)
    out = Path(args.out)
    outputs = output_paths(photos, out)
    folders = [Path(p) for p in args.inputs if Path(p).is_dir()] + ([Path(args.album)] if args.album else [])
    if outputs[0].image == out:  # one photo to a file: it may sit beside the inputs, not among them
        where = out.resolve().parent
        for folder in folders:
            if folder.resolve() == where or folder.resolve() in where.parents:
                raise ValueError(f"--out {out} lies inside the input folder {folder}; choose an --out outside it")
    else:
        ensure_outside_inputs(out, folders)
    for o in outputs:
        for path in (o.image, o.report, o.before_after):
            ensure_not_input(path, photos)
    album = None
    if args.album:
        try:
            album = Album(args.album, embedder=load_embedder(args.embedder))
        except ImportError as exc:  # an optional extra is missing: say which
            raise ValueError(str(exc)) from exc
    shard = current_shard()
    if shard.device is not None and args.device == "auto":
        args.device = shard.device  # accelerate gives each process its own GPU
    clean_stale_temporaries(outputs[0].image.parent, recursive=False)
    model = load_model(args)
    if album is None:
        print(f"no --album: every face is {'restored blind' if (args.unknown or 'blind') == 'blind' else 'kept'}",
              file=sys.stderr)
    elif shard.is_main and args.verify_refs != "off":
        for line in album.problems():
            print(f"warning: album: {line}", file=sys.stderr)
    unknown, k = args.unknown or "blind", args.select_refs or 4
    settings = {"k": k, "unknown": unknown, "strength": args.strength, "strict": args.verify_refs == "strict",
                "embedder": album.embedder.name if album else None, "crop_size": album.crop_size if album else 512}
    restorer = FaceRestorer(model, album=album, k=k, unknown=unknown, strict=settings["strict"],
                            strength=args.strength)
    mine = shard.take(outputs)
    model_id, album_key = model_fingerprint(model), album.key() if album else None
    job = plan(mine, [photo_provenance(model_id, album_key, settings, o.photo) for o in mine],
               args.overwrite, args.before_after)
    if job.done:
        print(f"skipping {len(job.done)} existing outputs{shard.label()} (use --overwrite to redo them)",
              file=sys.stderr)
    warn_kept("restore", [o.image.name for o in job.other], [o.image.name for o in job.foreign],
              "made with another model, album, settings or input", "redo them with this one")

    start, faces, unreadable = time.perf_counter(), 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceWarning)  # the album's problems were printed once above
        for o, made in tqdm(job.todo, desc=f"restoring{shard.label()}", unit="photo", disable=len(job.todo) < 2):
            report = restore_photo(restorer, o, made, before_after=args.before_after)
            faces += len(report["faces"])
            unreadable += report["output"] is None
    if job.todo:
        per = (time.perf_counter() - start) / max(faces, 1)
        print(f"restored {len(job.todo)} photo(s){shard.label()}, {per:.3f} s per face on {model.device}",
              file=sys.stderr)
    if album is not None:  # what the album cost this run: nothing once its caches are warm
        did = [f"{what} {', '.join(sorted(counts))}" for what, counts in
               (("aligned references of", album.prepared), ("encoded references of", album.encodes)) if counts]
        print(f"album{shard.label()}: {'; '.join(did) or 'all references from the cache'}", file=sys.stderr)
    shard.wait()
    if shard.is_main:
        summary = summarize(outputs)
        print(f"{summary.line()}; reports in {outputs[0].report.parent}")
        for line in summary.problems:
            print(f"  {line}", file=sys.stderr)
    return 2 if unreadable else 0


def run_info(args: argparse.Namespace) -> int:
    from ..generator.adapters import is_adapter_param

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


def _strength_arg(text: str) -> float | str:
    try:
        return check_strength_setting(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    restore = subparsers.add_parser("restore", help="restore the faces of whole photos with an album of their "
                                                    "people, or aligned face crops with reference photos",
                                    description="Restore every face of whole photos in one forward pass each, "
                                                "with the references of the album person it matches; or "
                                                "aligned face crops (--aligned) with given references.",
                                    epilog=RESTORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    restore.add_argument("inputs", nargs="+", metavar="INPUT", help="photo(s) or folder(s) (aligned crops with "
                                                                     "--aligned)")
    restore.add_argument("--out", required=True, help="output folder, or a file for one input")
    restore.add_argument("--strength", default=1.0, type=_strength_arg, metavar="S",
                         help="how much the references are followed: a number in [0, 1] (1 = fully, 0 = blind) "
                              "or 'auto' (chosen per face from how degraded it is); default 1")
    restore.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    photos = restore.add_argument_group("whole photos (the default)")
    photos.add_argument("--album", metavar="DIR", help="album/<person>/*.jpg: reference photos per person (whole "
                                                        "photos or aligned crops); faces are matched to them")
    photos.add_argument("-k", "--select-refs", type=int, metavar="K",
                        help="references per face, chosen by identity, pose, sharpness and landmarks (default 4)")
    photos.add_argument("--unknown", choices=("blind", "keep"),
                        help="a face that matches no album person: restore it blind (default) or keep it")
    photos.add_argument("--before-after", action="store_true", help="also write NAME_before_after.jpg")
    crops = restore.add_argument_group("aligned crops")
    crops.add_argument("--aligned", action="store_true",
                       help="inputs are aligned face crops (implied by --refs and --refs-cache)")
    crops.add_argument("--refs", nargs="+", metavar="REF", help="reference photos or folders of the same person")
    crops.add_argument("--refs-cache", metavar="FILE", help="reuse references encoded earlier with --save-cache")
    crops.add_argument("--save-cache", metavar="FILE", help="write the encoded references for later runs")
    restore.add_argument("--verify-refs", choices=("off", "warn", "strict"), default="warn",
                         help="aligned crops: check inputs show a face and references one person matching them; "
                              "photos: check each album person's references agree; warn, refuse (strict) or skip")
    restore.add_argument("--embedder", default="dlib", help="identity model for --verify-refs and for matching faces "
                                                            "to the album (see `refs --help`)")
    add_model_arguments(restore)
    restore.set_defaults(func=run_restore)

    info = subparsers.add_parser("info", help="print the backbone, parameter counts and injected layers",
                                 description="Build or load a model and print its backbone, image size, parameter "
                                             "counts, LoRA ranks, timestep, attention mode and the decoder "
                                             "self-attention layers that read the references.",
                                 epilog=INFO_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(info)
    info.set_defaults(func=run_info)
