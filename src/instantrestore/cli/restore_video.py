"""`instantrestore restore clip.mp4 --album album/ --out restored.mp4`: the video route of `restore`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..pipeline.folder_jobs import progress_bar


# photo flags the video job does not take: refused rather than silently ignored
PHOTO_ONLY = {"bg_upsampler": "--bg-upsampler", "bg_tile": "--bg-tile", "ext": "--ext",
              "suffix": "--suffix", "save_faces": "--save-faces", "draw_box": "--draw-box",
              "largest_face": "--largest-face", "cache_dir": "--cache-dir", "face_mask": "--face-mask",
              "color_fix": "--color-fix", "allow_small": "--allow-small"}


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def run_video(args: argparse.Namespace, load) -> int:
    """Restore one video (``pipeline.restore_video``) with the album and flags of `restore`."""
    from ..generator.fingerprints import model_fingerprint
    from ..pipeline.album import open_album
    from ..pipeline.face_paste import check_upscale
    from ..pipeline.face_restorer import FaceRestorer
    from ..pipeline.restore_video import check_paths, restore_video, video_summary
    from ..pipeline.video_io import load_av, probe_video

    if len(args.inputs) != 1:
        raise ValueError(f"restore one video at a time (got {len(args.inputs)} inputs); --out names its output")
    if args.before_after:
        raise ValueError("--before-after is for photos; a video's report is OUT.json")
    photo_only = [flag for name, flag in PHOTO_ONLY.items() if getattr(args, name, None) not in (None, False)]
    if photo_only:  # a video keeps its size and names; its faces go back through the face outline
        raise ValueError(f"{', '.join(photo_only)}: for photos only; a video's background is enlarged by "
                         "Lanczos (--upscale) and its files are the video and its report (docs/video.md)")
    upscale = 1 if args.upscale is None else check_upscale(args.upscale)  # a video keeps its size by default
    try:
        load_av()
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    src, out = Path(args.inputs[0]), Path(args.out)
    if out.is_dir() or not out.suffix:
        out = out / f"{src.stem}_restored.mp4"
    check_paths(src, out, args.overwrite)  # before the album and model load
    probe_video(src)
    album = open_album(args.album, args.embedder)
    if album is None:
        _say(f"no --album: every face is {'restored blind' if (args.unknown or 'blind') == 'blind' else 'kept'}")
    elif args.verify_refs != "off":
        for line in album.problems():
            _say(f"warning: album: {line}")
    model = load(None)
    unknown = "keep" if args.only_person is not None else (args.unknown or "blind")
    restorer = FaceRestorer(model, album=album, k=4 if args.select_refs is None else args.select_refs,
                            unknown=unknown, strict=args.verify_refs == "strict", strength=args.strength,
                            only_person=args.only_person)
    made = {"model": model_fingerprint(model), "album": album.key() if album else None}
    report = restore_video(restorer, src, out, crf=18 if args.crf is None else args.crf,
                           detect_every=args.detect_every or 1, overwrite=args.overwrite, made=made,
                           progress=progress_bar, log=_say, upscale=upscale)
    print(f"{out}: {video_summary(report)}; report {out.with_suffix('.json')}")
    for track in report["tracks"]:
        if track["fallback"]:
            _say(f"  track {track['track']}: {track['fallback']['reason']}")
    for line in report["problems"]:
        _say(f"  {line}")
    return 0
