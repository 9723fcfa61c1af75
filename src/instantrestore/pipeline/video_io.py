"""Video in and out through PyAV (FFmpeg's libraries): frames streamed one at a time, never the whole video.

    info = probe_video("clip.mp4")                       # VideoError: unreadable, no video stream
    with VideoWriter("out.mp4", info, crf=18) as writer:  # pipeline.video_write  # H.264, the input's time base and display rotation
        for frame in read_frames("clip.mp4"):           # upright uint8 RGB + the frame's own timestamp
            writer.write(frame.image, frame.pts)        # audio packets of the input are remuxed as we go

Timestamps: every output frame keeps its input frame's pts in the input stream's time base, so
variable frame rate, the frame count and the duration carry over. Rotation: frames are handed out
upright (the display matrix applied) so faces are detected the right way up; the writer turns them
back and writes the same display rotation, so the stored frames and the metadata match the input's.
Audio: the first audio stream's packets are copied unchanged (no re-encoding), interleaved by time.
Needs the ``video`` extra (``pip install 'instantrestore[video]'``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")
INSTALL_HINT = "video needs PyAV: pip install 'instantrestore[video]'"


class VideoError(ValueError):
    """A video that cannot be read or written: the message names the file and what is wrong."""


def load_av():
    """The ``av`` module (ImportError with the install line when the ``video`` extra is missing)."""
    try:
        import av
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return av


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video by its suffix (``VIDEO_SUFFIXES``)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What a video is: stored frame ``width`` x ``height`` (before rotation), ``frames`` (the
    container's count; 0 when it does not say), ``fps`` (average rate), ``time_base`` of the video
    stream, ``duration`` seconds, ``rotation`` degrees of the display matrix (0, 90, 180, 270 or
    -90...), ``codec``, ``audio`` (the first audio stream's codec name, None without audio)."""

    path: str
    width: int
    height: int
    frames: int
    fps: Fraction
    time_base: Fraction
    duration: float
    rotation: int
    codec: str
    audio: str | None

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) of the frames ``read_frames`` yields (rotation applied)."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)

    def to_json(self) -> dict:
        return {"width": self.width, "height": self.height, "frames": self.frames, "fps": float(self.fps),
                "time_base": str(self.time_base), "duration": round(self.duration, 4), "rotation": self.rotation,
                "codec": self.codec, "audio": self.audio}


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: ``index`` in decode order, ``pts`` and ``duration`` (0: unknown) in the
    stream's time base, ``time`` seconds, ``image`` uint8 RGB (H, W, 3), upright."""

    index: int
    pts: int | None
    time: float
    image: np.ndarray
    duration: int = 0


def _open(path: str | os.PathLike):
    av = load_av()
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: not a readable video ({exc})") from exc


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's header and first frame (for the rotation); VideoError when it has no video
    stream or its first frame cannot be decoded."""
    av = load_av()
    with _open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise VideoError(f"{path}: its first video frame cannot be decoded ({exc})") from exc
        if first is None:
            raise VideoError(f"{path}: its video stream holds no frame")
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / 1_000_000
        return VideoInfo(path=str(path), width=first.width, height=first.height, frames=int(stream.frames or 0),
                         fps=Fraction(fps), time_base=Fraction(stream.time_base or Fraction(1, 90000)),
                         duration=duration, rotation=int(round(first.rotation or 0)) % 360,
                         codec=stream.codec_context.name, audio=audio)


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """A stored frame turned as the display matrix says (``rotation`` degrees counter-clockwise, FFmpeg's
    ``av_display_rotation_get``); ``stored`` undoes it."""
    return np.ascontiguousarray(np.rot90(image, k=(rotation // 90) % 4))


def stored(image: np.ndarray, rotation: int) -> np.ndarray:
    """The inverse of ``upright``."""
    return np.ascontiguousarray(np.rot90(image, k=-(rotation // 90) % 4))


def read_frames(path: str | os.PathLike, rotation: int | None = None) -> Iterator[VideoFrame]:
    """Decode the first video stream frame by frame (upright RGB). A frame that fails to decode
    mid-file (a truncated or corrupt video) ends the stream with VideoError naming the frame.
    rotation: the display rotation to apply (default each frame's own)."""
    av = load_av()
    with _open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                turn = int(round(frame.rotation or 0)) % 360 if rotation is None else rotation
                time = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                yield VideoFrame(index, frame.pts, time, upright(frame.to_ndarray(format="rgb24"), turn),
                                 int(frame.duration or 0))
                index += 1
        except av.FFmpegError as exc:
            raise VideoError(f"{path}: decoding failed after {index} frames ({exc})") from exc
