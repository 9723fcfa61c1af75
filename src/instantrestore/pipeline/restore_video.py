"""Restore a video: every face track restored with its own album person's references, frame by frame.

    restorer = FaceRestorer(model, album=Album("album/"), k=4)
    report = restore_video(restorer, "clip.mp4", "restored.mp4", crf=18, detect_every=1)

Two passes over the frames, both streamed (one decoded frame in memory at a time):

1. ``video_tracks.find_tracks``: detect, embed, track, smooth landmarks, vote each track's person,
   choose its references and strength once. Its result is small and saved in the work folder.
2. decode again; on each frame, align every track's face with its smoothed landmarks
   (``faces.align.align_face``), restore it as the track's person with the track's references,
   strength and seed (``person_crop.restore_as``), paste it back (``FaceRestorer.paste``,
   the photos' face-shaped paste) and encode. Frames are encoded in chunks of ``chunk_seconds``.

Resumable and atomic: the work folder ``.NAME.instantrestore-video/`` beside the output holds pass
1's tracks and each finished chunk; a stopped run started again with the same input and settings
skips pass 1 and the finished chunks (it decodes those frames again, it does not restore them).
When every chunk is done they are joined without re-encoding, the input's audio packets copied in
(``video_write.concat_segments``), into a temporary renamed onto the output: the output only ever
appears complete. The report ``NAME.json`` beside it lists each track (frames, person, similarity,
vote, references, fallbacks), the video's properties and the time per part. The input is only read;
an existing output is refused without ``overwrite``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..faces.align import align_face
from ..generator.temporal import TrackMemory, check_weight, track_smoothing
from ..utils.files import atomic_path, atomic_write_text
from .face_paste import check_upscale
from .folder_jobs import Log, Progress, no_log, no_progress
from .person_crop import restore_as
from .photo_report import timed
from .video_io import VideoError, probe_video, read_frames
from .video_tracks import TrackPlan, find_tracks
from .video_write import VideoWriter, concat_segments

if TYPE_CHECKING:
    from .face_restorer import FaceRestorer

WORK_SUFFIX = ".instantrestore-video"
PARTS = ("decode", "detect_track", "restore", "paste", "encode")
OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")


def work_folder(dest: str | os.PathLike) -> Path:
    """The hidden folder beside ``dest`` that holds a run's tracks and finished chunks."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}{WORK_SUFFIX}"


def report_path(dest: str | os.PathLike) -> Path:
    """The report written beside an output video: NAME.json."""
    return Path(dest).with_suffix(".json")


def check_paths(src: Path, dest: Path, overwrite: bool) -> None:
    """Refuse an output that is not a video file, is the input, or exists (with its report) without ``overwrite``."""
    if dest.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{dest}: the output must be a video file ({', '.join(OUTPUT_SUFFIXES)})")
    if dest.resolve() == src.resolve():
        raise ValueError(f"{dest}: the output would replace the input; name another file")
    for path in (dest, report_path(dest)):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")


def _run_key(src: Path, settings: dict) -> str:
    """What a work folder's tracks and chunks were made from: the input file (size, mtime) and settings."""
    stat = src.stat()
    text = json.dumps({"input": str(src.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns, **settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_settings(restorer: "FaceRestorer", crf: int = 18, detect_every: int = 1, chunk_seconds: float = 10.0,
                 seed: int = 0, made: dict | None = None, upscale: float = 1, temporal: float = 0.0) -> dict:
    """The settings a video is restored with, as its report records them (``restore_video``'s arguments and
    the restorer's; a setting at its old default is left out, so earlier reports still read alike)."""
    return {"crf": crf, "detect_every": detect_every, "chunk_seconds": chunk_seconds, "seed": seed,
            "k": restorer.k, "unknown": restorer.unknown, "strength": restorer.strength,
            "crop_size": restorer.crop_size, **({"upscale": upscale} if upscale != 1 else {}),
            **({"temporal": temporal} if temporal else {}), **(made or {})}


def _save_tracks(work: Path, plans: list[TrackPlan], times: list[float]) -> None:
    arrays = {f"track{p.id}": p.landmarks for p in plans}
    with atomic_path(work / "tracks.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, times=np.asarray(times), **arrays)
    atomic_write_text(work / "tracks.json", json.dumps([p.to_json() for p in plans]))


def _load_tracks(work: Path) -> tuple[list[TrackPlan], list[float]] | None:
    try:
        rows = json.loads((work / "tracks.json").read_text())
        with np.load(work / "tracks.npz") as arrays:
            times = arrays["times"].tolist()
            plans = [TrackPlan(id=r["track"], first=r["first_frame"], landmarks=arrays[f"track{r['track']}"],
                               detected=r["detected_frames"], person=r["person"], similarity=r["similarity"],
                               vote_share=r["vote_share"], votes=r["votes"], references=r["references"],
                               strength=r["strength"], seed=r["seed"], restored=r["restored"],
                               fallback=r["fallback"], box=r["first_box"]) for r in rows]
    except (OSError, ValueError, KeyError):
        return None
    return plans, times


def _restore_frame(restorer: "FaceRestorer", image: np.ndarray, index: int, plans: list[TrackPlan],
                   problems: dict[int, list], seconds: dict[str, float], upscale: float = 1,
                   memories: dict[int, TrackMemory] | None = None, temporal: float = 0.0) -> np.ndarray:
    """One frame, enlarged ``upscale`` times by the photos' background upsampler, with every track on it
    restored and pasted back through the photos' paste (``restorer.paste``: colour fix and the face outline of
    the smoothed landmarks; a failing face is kept and noted). ``temporal`` > 0: each track's decoder
    attention outputs and decoder latent blended with its previous frame's (``track_smoothing``), kept in
    ``memories`` (track id -> TrackMemory)."""
    out = restorer.paste.background(image, upscale)  # a new array (pasted in place), never the decoded frame
    for plan in plans:
        if plan.restored is None or not plan.covers(index):
            continue
        step = "align"
        try:
            with timed(seconds, "restore"):
                aligned = align_face(image, plan.face_at(index), restorer.crop_size)
                step = "restore"
                person = plan.person if plan.restored == "references" else None
                smoothing = contextlib.nullcontext() if not temporal else \
                    track_smoothing(restorer.model, memories.setdefault(plan.id, TrackMemory()), temporal)
                with smoothing:
                    restored, _ = restore_as(restorer, aligned.crop, person, plan.references or None, plan.seed,
                                             plan.strength if plan.strength is not None else None)
            step = "paste"
            with timed(seconds, "paste"):
                out = restorer.paste.paste(out, aligned, restored, {}, upscale)
        except Exception as exc:  # noqa: BLE001 - one face on one frame never costs the video
            problems.setdefault(plan.id, []).append({"frame": index, "step": step,
                                                     "reason": f"{type(exc).__name__}: {exc}; kept as it is"})
    return out


def restore_video(restorer: "FaceRestorer", src: str | os.PathLike, dest: str | os.PathLike, crf: int = 18,
                  detect_every: int = 1, chunk_seconds: float = 10.0, overwrite: bool = False, seed: int = 0,
                  made: dict | None = None, progress: Progress = no_progress, log: Log = no_log,
                  upscale: float = 1, temporal: float = 0.0) -> dict:
    """Restore every face of video ``src`` into ``dest`` (see the module docs); returns the report
    (also written to ``report_path(dest)``). crf: H.264 quality (0-51, lower is better, 18 looks
    lossless); detect_every: detect faces on every k-th frame, interpolating between; seed: the base
    of each track's seed (track i uses seed + i); made: what the caller wants recorded (model, album);
    upscale: the output video is this many times larger (1 to 8; the background by ``restorer.paste``'s
    upsampler, each face pasted at that size, as for photos); temporal: weight in [0, 1) of the previous
    frame's decoder attention outputs and latent in each track's frame (``generator.temporal.track_smoothing``;
    0 = each frame alone). The smoothing restarts at each chunk, so a resumed run writes the same frames."""
    src, dest = Path(src), Path(dest)
    check_paths(src, dest, overwrite)
    info = probe_video(src)
    upscale = check_upscale(upscale)
    temporal = check_weight(temporal)
    # the stored (pre-rotation) size of the output frames: output_size's rounding, per side
    out_info = replace(info, width=round(info.width * upscale), height=round(info.height * upscale))
    settings = run_settings(restorer, crf, detect_every, chunk_seconds, seed, made, upscale, temporal)
    work = work_folder(dest)
    key = _run_key(src, settings)
    if (work / "key.txt").is_file() and (work / "key.txt").read_text() != key:
        log(f"{work}: made from another input or settings; starting afresh")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "key.txt").write_text(key)
    seconds: dict[str, float] = {}
    clock = lambda step: timed(seconds, step)  # noqa: E731
    loaded = _load_tracks(work)
    if loaded is None:
        plans, times = find_tracks(read_frames(src), restorer, detect_every, seed, clock=clock)
        _save_tracks(work, plans, times)
    else:
        plans, times = loaded
        log(f"{work}: tracks found by an earlier run, pass 1 skipped")
    total = len(times)
    chunk = max(1, round(chunk_seconds * float(info.fps)))
    segments = [work / f"chunk{c:05d}.mp4" for c in range((total + chunk - 1) // chunk)]
    resumed = sum(s.is_file() for s in segments)
    if resumed:
        log(f"{work}: {resumed} of {len(segments)} chunk(s) done by an earlier run, continuing")
    problems: dict[int, list] = {}
    memories: dict[int, TrackMemory] = {}
    bar = iter(progress(range(total), "restoring", "frame"))
    writer, temp = None, None
    frames = read_frames(src)
    try:
        while True:
            with clock("decode"):
                frame = next(frames, None)
            if frame is None:
                break
            next(bar, None)
            c = frame.index // chunk
            if c >= len(segments) or segments[c].is_file():
                continue
            if frame.index % chunk == 0:  # each chunk starts afresh: a resumed run writes the same frames
                memories.clear()
            if writer is None:
                temp = segments[c].with_name(f".{segments[c].name}.{os.getpid()}.mp4")
                writer = VideoWriter(temp, out_info, crf=crf, audio_from=None)
            image = _restore_frame(restorer, frame.image, frame.index, plans, problems, seconds, upscale,
                                   memories, temporal)
            with clock("encode"):
                writer.write(image, frame.pts, frame.duration)
                if frame.index % chunk == chunk - 1 or frame.index == total - 1:
                    writer.close()
                    writer = None
                    os.replace(temp, segments[c])
        for _ in bar:  # finish the bar (it counts a frame when the next one is asked for)
            pass
    finally:
        frames.close()
        if writer is not None:
            writer._close_all()  # an unfinished chunk is dropped: the next run redoes it
            temp.unlink(missing_ok=True)
    missing = [s.name for s in segments if not s.is_file()]
    if missing:
        raise VideoError(f"{src}: {len(missing)} chunk(s) not written ({missing[0]}...): decoding ended early")
    with clock("encode"):
        with atomic_path(dest) as tmp:
            written = concat_segments(segments, out_info, tmp)
    for plan in plans:
        if problems.get(plan.id):
            plan.fallback = plan.fallback or {"step": problems[plan.id][0]["step"],
                                              "reason": f"failed on {len(problems[plan.id])} frame(s)"}
    faces = sum(len(p.landmarks) for p in plans if p.restored)
    report = {"input": str(src), "output": str(dest), "video": info.to_json(), "output_video": out_info.to_json(), "frames": total,
              "frames_written": written, "settings": settings, "resumed_chunks": resumed,
              "tracks": [{**p.to_json(), "failed_frames": problems.get(p.id, [])[:20]} for p in plans],
              "problems": [] if plans else ["no face found in any frame: the video is re-encoded unchanged"],
              "faces_restored": faces, "seconds": {k: round(seconds.get(k, 0.0), 3) for k in PARTS}}
    atomic_write_text(report_path(dest), json.dumps(report, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return report


def video_summary(report: dict) -> str:
    """One line about a finished video: frames, tracks and who they are, time per face-frame."""
    tracks = report["tracks"]
    who = ", ".join(f"track {t['track']}: {t['person'] or t['restored'] or 'kept'} ({t['frames']} frames)"
                    for t in tracks) or "no face"
    spent = sum(report["seconds"].values())
    per = f"; {report['faces_restored'] / spent:.2f} face-frames/s" if spent and report["faces_restored"] else ""
    return f"{report['frames']} frames, {len(tracks)} track(s) ({who}){per}"
