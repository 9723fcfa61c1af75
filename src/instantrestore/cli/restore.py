"""`instantrestore restore` and `instantrestore info`: flags in, one library job, lines out.

Whole photos run ``pipeline.restore_photos.run_photo_job``, aligned crops
``pipeline.restore_crops.restore_crops``; both name, resume and record their outputs through
``pipeline.folder_jobs``. The strength flag is read by ``pipeline.strength.parse_strength``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..pipeline.folder_jobs import progress_bar
from ..pipeline.strength import parse_strength
from .checks import at_least
from .common import add_model_arguments, load_model

RESTORE_EPILOG = """examples:
  instantrestore restore photos/ --album album/ --out restored/ --checkpoint runs/model
  instantrestore restore photo.jpg --album album/ --out restored/ --strength auto --before-after
  instantrestore restore photos/ --album album/ --out restored/ --upscale 4 --bg-upsampler RealESRGAN_x4plus.pth ...
  instantrestore restore photos/ --album album/ --out restored/ --ext png --suffix v2 --save-faces --draw-box ...
  instantrestore restore group.jpg --album album/ --out restored/ --largest-face --cache-dir ~/.cache/album ...
  instantrestore restore photos/ --album album/ --only-person ann --out restored/ ...   # ann's faces only
  accelerate launch --num_processes 2 -m instantrestore restore photos/ --album album/ --out restored/ ...
  instantrestore restore face.png --refs ref1.png ref2.png --out restored.png --checkpoint runs/model
  instantrestore restore faces/ --aligned --refs album/person/ --out restored/ --save-cache person.refs ...
  instantrestore restore clip.mp4 --album album/ --out restored.mp4 --crf 18 --checkpoint runs/model
  instantrestore restore videos/ --album album/ --out restored/ --temporal 0.5 ...   # every video of a folder
Whole photos (the default): every face is detected, aligned, matched to a person of --album
(album/<person>/*.jpg, whole photos or aligned crops), restored with that person's best -k
references and pasted back through its face outline into the photo enlarged --upscale times
(default 2; outside the faces: the --bg-upsampler's output; --upscale 1 changes nothing outside
them); OUT/NAME.png (or .jpg) is the photo, OUT/NAME.json its report (faces, boxes, matched person
and similarity, references used, strength, what fell back and why).
A face that matches no one is restored blind or kept (--unknown); with --only-person NAME only
NAME's faces are restored, with --largest-face only each photo's largest face; every other face is
kept as it is. The album's aligned references and encoded keys/values are cached in
album/.instantrestore-cache/ (--cache-dir: elsewhere, e.g. for an album on a read-only disk).
Output files: the photo keeps the input's format (--ext auto): a JPEG is written as JPEG,
re-encoded at quality 95 with no colour subsampling, anything else as PNG (--ext png for JPEG
inputs too). Its EXIF (the orientation reset to 1: the pixels are upright already) and colour
profile are carried over.
--suffix S names the outputs NAME_S.*; --save-faces also writes each face's aligned input crop and
restored crop as OUT/cropped_faces/NAME_00.png and OUT/restored_faces/NAME_00.png (index as in the
report); --draw-box draws every face's box on the photo (green: restored, red: kept).
With no --checkpoint (and no --backbone) the shipped tiny synthetic-world model runs, as in `ui` and
`demo`: every step works on real photos, but the faces it makes mean nothing (README, 'Use the
published weights').
Aligned crops (--aligned, implied by --refs / --refs-cache): every input is one face crop,
restored with the same references, or blind.
Existing outputs are skipped unless --overwrite, so a stopped job resumes where it left off; each
output records the model, references or album and settings that made it, and one made otherwise
(or a file restore did not write) is kept with a warning.
Video (an input ending .mp4, .mov, .mkv, .avi, .webm, ...; needs pip install 'instantrestore[video]'):
faces are tracked across frames, each track matched to an album person once by a vote over its
frames and every frame of it restored with that person's references; timestamps, rotation and the
audio are carried over; OUT.json reports each track. See docs/video.md. Under `accelerate launch` the photos
are shared between the processes, each writing its own. --out must lie outside the input folders."""

INFO_EPILOG = """examples:
  instantrestore info --backbone sd-turbo
  instantrestore info --checkpoint runs/sd-turbo/final"""


PHOTO_FLAGS = {"album": "--album", "unknown": "--unknown", "select_refs": "-k/--select-refs",
               "before_after": "--before-after", "only_person": "--only-person", "ext": "--ext", "suffix": "--suffix",
               "save_faces": "--save-faces", "draw_box": "--draw-box", "largest_face": "--largest-face",
               "cache_dir": "--cache-dir"}
PASTE_FLAGS = {"upscale": "--upscale", "bg_upsampler": "--bg-upsampler", "bg_tile": "--bg-tile",
               "color_fix": "--color-fix", "face_mask": "--face-mask", "allow_small": "--allow-small"}
PHOTO_FLAGS.update(PASTE_FLAGS)
CROP_FLAGS = {"refs": "--refs", "refs_cache": "--refs-cache", "save_cache": "--save-cache"}


def restore_mode(args: argparse.Namespace) -> str:
    """'photos' (whole photos, the default) or 'aligned' (aligned crops: --aligned, --refs, --refs-cache);
    refuses flags of the other mode with the fix."""
    photo = [flag for name, flag in PHOTO_FLAGS.items() if getattr(args, name) not in (None, False)]
    crop = [flag for name, flag in CROP_FLAGS.items() if getattr(args, name)]
    if photo and (crop or args.aligned):
        given = ", ".join(crop + (["--aligned"] if args.aligned else []))
        raise ValueError(f"{', '.join(photo)} restore whole photos (each face with its own album person's "
                         f"references), {given} aligned crops with one set of references; use one or the other")
    return "aligned" if crop or args.aligned else "photos"


def strength_type(text: str) -> float | str:
    """argparse ``type=`` of --strength: ``parse_strength``, its message as argparse's error."""
    try:
        return parse_strength(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def run_restore(args: argparse.Namespace) -> int:
    def load(device: str | None):
        # the device accelerate gives this process, unless --device names one
        return load_model(args, device=device if args.device == "auto" else None, shipped_default=True)

    if restore_mode(args) == "aligned":
        return _run_crops(args, load)
    from ..pipeline.video_io import is_video_path

    from ..pipeline.restore_videos import expand_videos

    if any(is_video_path(p) for p in args.inputs) or expand_videos(args.inputs):
        from .restore_video import run_video

        return run_video(args, load)
    if args.crf is not None or args.detect_every is not None or args.temporal is not None:
        raise ValueError("--crf, --detect-every and --temporal are for video inputs (.mp4, .mov, .mkv, ...)")
    _warn_videos_beside_photos(args.inputs)
    return _run_photos(args, load)


def _warn_videos_beside_photos(inputs: list[str]) -> None:
    """A folder of photos is a photo job even when it holds videos too: say which are left alone."""
    from ..pipeline.restore_videos import videos_in

    for folder in map(Path, inputs):
        videos = [p.name for p in videos_in(folder)] if folder.is_dir() else []
        if videos:
            shown = ", ".join(videos[:3]) + (f" and {len(videos) - 3} more" if len(videos) > 3 else "")
            print(f"warning: {folder} holds {len(videos)} video(s) beside its photos ({shown}); a folder with photos "
                  f"is restored as photos, so they are left alone: restore them on their own (instantrestore "
                  f"restore {folder / videos[0]} ...) or from a folder of videos only", file=sys.stderr)


def _run_photos(args: argparse.Namespace, load) -> int:
    """Whole photos: every face matched to the album, restored with its person's references, pasted back."""
    from ..pipeline.restore_photos import PhotoJob, run_photo_job

    if args.only_person is not None and args.unknown == "blind":
        raise ValueError(f"--only-person {args.only_person} keeps every other face as it is, --unknown blind would "
                         "restore them blind; use one or the other")
    if args.cache_dir and not args.album:
        raise ValueError(f"--cache-dir {args.cache_dir} is where the album's caches go; give --album DIR too, or "
                         "leave --cache-dir out")
    job = PhotoJob(inputs=args.inputs, out=Path(args.out), album=Path(args.album) if args.album else None,
                   embedder=args.embedder, k=4 if args.select_refs is None else args.select_refs,
                   unknown=args.unknown or "blind",
                   strength=args.strength, verify=args.verify_refs, overwrite=args.overwrite,
                   before_after=args.before_after, only_person=args.only_person, ext=args.ext or "auto",
                   suffix=args.suffix, save_faces=args.save_faces, draw_box=args.draw_box,
                   largest_face=args.largest_face, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                   paste=paste_options(args))
    result = run_photo_job(job, load, log=_say, progress=progress_bar)
    if result.summary is not None:
        print(f"{result.summary.line()}; reports in {result.outputs[0].report.parent}")
        for line in result.summary.problems:
            print(f"  {line}", file=sys.stderr)
    return 2 if result.unreadable else 0


def paste_options(args: argparse.Namespace):
    """The --upscale / --bg-upsampler / --bg-tile / --color-fix / --face-mask / --allow-small flags as
    ``PasteOptions`` (a flag not given keeps its default)."""
    from ..pipeline.face_paste import PasteOptions, check_upscale

    given = {name: getattr(args, name) for name in PASTE_FLAGS if getattr(args, name) not in (None, False)}
    if "upscale" in given:
        check_upscale(given["upscale"])
    return PasteOptions(**given)


def _run_crops(args: argparse.Namespace, load) -> int:
    """Aligned face crops, all with the same references (or blind)."""
    from ..pipeline.restore_crops import CropJob, restore_crops

    job = CropJob(inputs=args.inputs, out=Path(args.out), refs=args.refs or (), refs_cache=args.refs_cache,
                  save_cache=args.save_cache, strength=args.strength, verify=args.verify_refs,
                  embedder=args.embedder, overwrite=args.overwrite)
    restore_crops(job, load, log=_say, progress=progress_bar)
    return 0


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
    restore.add_argument("--strength", default=1.0, type=strength_type, metavar="S",
                         help="how much the references are followed: a number in [0, 1] (1 = fully, 0 = blind) "
                              "or 'auto' (chosen per face from how degraded it is); default 1")
    restore.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    photos = restore.add_argument_group("whole photos (the default)")
    photos.add_argument("--album", metavar="DIR", help="album/<person>/*.jpg: reference photos per person (whole "
                                                        "photos or aligned crops); faces are matched to them")
    photos.add_argument("-k", "--select-refs", type=at_least(1), metavar="K",
                        help="references per face, chosen by identity, pose, sharpness and landmarks (default 4)")
    photos.add_argument("--unknown", choices=("blind", "keep"),
                        help="a face that matches no album person: restore it blind (default) or keep it")
    photos.add_argument("--only-person", metavar="NAME",
                        help="restore only the faces of this album person (matched against NAME alone; the "
                             "match threshold still applies); every other face is kept as it is, its report "
                             "saying why. Needs --album")
    photos.add_argument("--before-after", action="store_true", help="also write NAME_before_after.jpg")
    photos.add_argument("--upscale", type=float, metavar="N",
                        help="the photo comes out N times larger (1 to 8; default 2; a video: 1); each face is restored at the "
                             "model's resolution and pasted at that size. 1: the background is not changed at all")
    photos.add_argument("--bg-upsampler", metavar="NAME|FILE",
                        help="how the rest of the photo is enlarged: lanczos (default), bicubic, or a super-"
                             "resolution model file (Real-ESRGAN, SwinIR, ...: .safetensors or .pth, read as "
                             "plain weights; needs pip install 'instantrestore[sr]')")
    photos.add_argument("--bg-tile", type=at_least(16), metavar="PX",
                        help="tile side (input pixels) a --bg-upsampler model runs on; smaller uses less memory "
                             "(default 256)")
    photos.add_argument("--color-fix", choices=("none", "wavelet", "adain"),
                        help="take each restored face's colours from its input (default wavelet: measured to lower "
                             "the colour error without costing identity, docs/faces.md); none keeps the model's")
    photos.add_argument("--face-mask", choices=("face", "square"),
                        help="paste through the face outline from the landmarks (default) or the aligned square")
    photos.add_argument("--allow-small", action="store_true",
                        help="also restore faces over twice the model's resolution in the photo (restored "
                             "they lose detail the photo has; by default such a face is kept, as `paste` does)")
    # the photo's own files (pipeline/photo_files.py) and which faces
    photos.add_argument("--ext", choices=("auto", "png", "jpg"),
                        help="format of the restored photo: auto (default) = the input's (JPEG in, JPEG out at "
                             "quality 95; else PNG), png (pixels outside the faces kept byte for byte) or jpg")
    photos.add_argument("--suffix", metavar="S", help="append _S to the output names (NAME_S.png, NAME_S.json, ...)")
    photos.add_argument("--save-faces", action="store_true",
                        help="also write each face's aligned input crop and restored crop: "
                             "OUT/cropped_faces/NAME_00.png, OUT/restored_faces/NAME_00.png, ...")
    photos.add_argument("--draw-box", action="store_true",
                        help="draw each face's box on the restored photo (green: restored; red: kept)")
    photos.add_argument("--largest-face", action="store_true",
                        help="restore only the largest face of each photo; the others are kept as they are")
    photos.add_argument("--cache-dir", metavar="DIR", help="where the album's caches go (default "
                                                           "ALBUM/.instantrestore-cache); one folder per album")
    video = restore.add_argument_group("video (an input .mp4/.mov/.mkv/...: --out names the output video)")
    video.add_argument("--crf", type=int, metavar="N", help="H.264 quality of the output, 0-51 (lower is better; "
                                                              "default 18, visually lossless)")
    video.add_argument("--detect-every", type=at_least(1), metavar="K",
                       help="detect faces on every K-th frame, interpolating the landmarks between (default 1)")
    video.add_argument("--temporal", type=float, metavar="W",
                       help="blend each face's decoder attention outputs and latent with its previous frame's, "
                            "weight W in [0, 1) (default 0: every frame alone; 0.5 measured best; docs/video.md)")
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
