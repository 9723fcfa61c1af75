"""Restore a folder of videos: ``restore videos/ --out outdir/``, each video as ``restore_video`` does one.

    plan = plan_videos(restorer, ["videos/"], "outdir/", crf=18)
    result = restore_videos(restorer, plan, crf=18)

Each input ``NAME.mp4`` (any ``video_io.VIDEO_SUFFIXES``) becomes ``outdir/NAME_restored.mp4`` with its
report ``outdir/NAME_restored.json`` (inputs of the same name from several folders: ``FOLDER_NAME``).
Resumable per file, as the photo folder jobs are (``folder_jobs.plan_outputs``): a video whose output
and report are there and whose report records the same input and settings is skipped; one made
with other settings, or an output file the job did not write (no report of ours beside it), is kept
and said, never replaced without ``overwrite``. A video stopped mid-way continues from its last
finished chunk (``restore_video``'s work folder). A video that fails (unreadable, truncated) is
reported and the others go on.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..utils.files import list_images
from ..utils.outputs import DONE, OTHER, FOREIGN, TODO, classify_files
from .folder_jobs import Log, kept_lines, no_log, output_stems, skipped_line
from .restore_video import report_path, restore_video, run_settings
from .video_io import VideoError, is_video_path

if TYPE_CHECKING:
    from .face_restorer import FaceRestorer


def videos_in(folder: str | os.PathLike) -> list[Path]:
    """The video files of ``folder`` (not hidden, not recursive), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_video_path(p) and not p.name.startswith("."))


def expand_videos(paths: Sequence[str | os.PathLike]) -> list[Path] | None:
    """The videos of ``paths`` (video files as given, the videos of folders, sorted, not recursive), or
    None when an input is not a video or a folder of videos only (the inputs are photos then: a folder of
    photos that also holds a clip is restored as photos, as it always was)."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            videos = videos_in(item)
            if not videos or list_images(item):
                return None
            found.extend(videos)
        elif is_video_path(item):
            found.append(item)
        else:
            return None
    return found


def video_output(src: Path, out_dir: Path, stem: str | None = None) -> Path:
    """Where a video restored into the folder ``out_dir`` goes: ``STEM_restored.mp4`` (STEM: the input's)."""
    return Path(out_dir) / f"{stem or Path(src).stem}_restored.mp4"


def _recorded(path: Path) -> dict | None:
    """What a video report beside an output records of how the output was made: its input and settings."""
    try:
        data = json.loads(report_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not {"input", "settings", "tracks"} <= set(data):
        return None
    return {"input": data["input"], "settings": data["settings"]}


@dataclass
class VideoPlan:
    """The videos of a folder job: ``todo`` (input, output), and the outputs left: ``done``, ``other``
    (made with other settings or input) and ``foreign`` (not written by this job)."""

    todo: list[tuple[Path, Path]] = field(default_factory=list)
    done: list[Path] = field(default_factory=list)
    other: list[Path] = field(default_factory=list)
    foreign: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What a resumed job says about the outputs it leaves."""
        lines = [skipped_line(len(self.done))] if self.done else []
        return lines + kept_lines("restore", [p.name for p in self.other], [p.name for p in self.foreign],
                                  "made from another input or settings")


def plan_videos(restorer: "FaceRestorer", inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                overwrite: bool = False, **options) -> VideoPlan:
    """Sort the videos of ``inputs`` into what to restore into ``out_dir`` and what to leave; ``options``:
    ``restore_video``'s settings (crf, detect_every, chunk_seconds, seed, made, upscale, temporal)."""
    videos = expand_videos(inputs)
    if not videos:
        raise FileNotFoundError(f"{', '.join(map(str, inputs))}: no video files")
    out_dir = Path(out_dir)
    if out_dir.suffix and is_video_path(out_dir):
        raise ValueError(f"--out {out_dir}: several videos go into a folder, not one file")
    stems = output_stems(videos, lambda p: f"{p.parent.name}_{p.stem}")
    settings = run_settings(restorer, **options)
    plan = VideoPlan()
    for src, stem in zip(videos, stems):
        dest = video_output(src, out_dir, stem)
        made = {"input": str(src), "settings": settings}
        status, _ = classify_files([(dest, _recorded), (report_path(dest), _recorded)], made, overwrite)
        if status == TODO:
            plan.todo.append((src, dest))
        else:
            {DONE: plan.done, OTHER: plan.other, FOREIGN: plan.foreign}[status].append(dest)
    return plan


def restore_videos(restorer: "FaceRestorer", plan: VideoPlan, log: Log = no_log, **options) -> dict:
    """Restore every video ``plan`` has to do (``restore_video`` with ``options``, e.g. crf, progress);
    returns {'restored': [reports], 'failed': [{'input', 'reason'}], 'skipped', 'kept'}."""
    for line in plan.lines():
        log(line)
    restored, failed = [], []
    for number, (src, dest) in enumerate(plan.todo, 1):
        log(f"[{number}/{len(plan.todo)}] {src} -> {dest}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:  # the plan found no file of the user's at dest: what is there is this job's, unfinished
            restored.append(restore_video(restorer, src, dest, overwrite=True, log=log, **options))
        except (VideoError, OSError, ValueError) as exc:  # one bad file never costs the others
            failed.append({"input": str(src), "reason": f"{type(exc).__name__}: {exc}"})
            log(f"  failed: {failed[-1]['reason']}")
    return {"restored": restored, "failed": failed, "skipped": len(plan.done),
            "kept": len(plan.other) + len(plan.foreign)}
