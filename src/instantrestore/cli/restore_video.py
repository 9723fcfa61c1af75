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
    """Restore one video (``pipeline.restore_video``), or the videos of folders into the folder ``--out``
    (``pipeline.restore_videos``), with the album and flags of `restore`."""
    from ..generator.fingerprints import model_fingerprint
    from ..generator.temporal import check_weight
    from ..pipeline.album import open_album
    from ..pipeline.face_paste import check_upscale
    from ..pipeline.face_restorer import FaceRestorer
    from ..pipeline.restore_video import check_paths, restore_video, video_summary
    from ..pipeline.restore_videos import expand_videos, plan_videos, restore_videos, video_output
    from ..pipeline.video_io import load_av, probe_video

    one = len(args.inputs) == 1 and not Path(args.inputs[0]).is_dir()
    if not one and expand_videos(args.inputs) is None:
        raise ValueError("restore videos or folders of videos, or photos, not both in one run")
    if args.before_after:
        raise ValueError("--before-after is for photos; a video's report is OUT.json")
    photo_only = [flag for name, flag in PHOTO_ONLY.items() if getattr(args, name, None) not in (None, False)]
    if photo_only:  # a video keeps its size and names; its faces go back through the face outline
        raise ValueError(f"{', '.join(photo_only)}: for photos only; a video's background is enlarged by "
                         "Lanczos (--upscale) and its files are the video and its report (docs/video.md)")
    upscale = 1 if args.upscale is None else check_upscale(args.upscale)  # a video keeps its size by default
    temporal = check_weight(args.temporal or 0.0)
    try:
        load_av()
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    out = Path(args.out)
    if one:
        src = Path(args.inputs[0])
        if out.is_dir() or not out.suffix:
            out = video_output(src, out)
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
    settings = dict(crf=18 if args.crf is None else args.crf, detect_every=args.detect_every or 1, upscale=upscale,
                    temporal=temporal, made={"model": model_fingerprint(model), "album": album.key() if album else None})
    if not one:
        plan = plan_videos(restorer, args.inputs, out, overwrite=args.overwrite, **settings)
        result = restore_videos(restorer, plan, log=_say, progress=progress_bar, **settings)
        for report in result["restored"]:
            print(f"{report['output']}: {video_summary(report)}")
        print(f"{len(result['restored'])} video(s) restored into {out}, {result['skipped']} done before, "
              f"{result['kept']} kept, {len(result['failed'])} failed")
        return 1 if result["failed"] else 0
    report = restore_video(restorer, src, out, overwrite=args.overwrite, progress=progress_bar, log=_say, **settings)
    print(f"{out}: {video_summary(report)}; report {out.with_suffix('.json')}")
    for track in report["tracks"]:
        if track["fallback"]:
            _say(f"  track {track['track']}: {track['fallback']['reason']}")
    for line in report["problems"]:
        _say(f"  {line}")
    return 0
