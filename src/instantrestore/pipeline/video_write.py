"""Writing video: ``VideoWriter`` (H.264 frames with the input's timestamps and rotation, audio
remuxed) and ``concat_segments`` (join separately encoded chunks without re-encoding, for resumable
jobs). Reading and probing are in ``pipeline.video_io``; see its docs for the conventions."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .video_io import VideoInfo, load_av, stored


class _AudioCopy:
    """The first audio stream of ``source``, copied packet by packet (never re-encoded) into ``output``."""

    def __init__(self, output, source: str | os.PathLike):
        self._input = load_av().open(str(source))
        template = self._input.streams.audio[0]
        self._output, self._stream = output, output.add_stream_from_template(template)
        self._packets: Iterator | None = (p for p in self._input.demux(template) if p.dts is not None)
        self._pending = None

    def until(self, seconds: float | None) -> None:
        """Mux the packets that start up to ``seconds`` (None: all that are left)."""
        while self._packets is not None:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                self._packets = None
                return
            if seconds is not None and packet.time_base and float(packet.dts * packet.time_base) > seconds:
                self._pending = packet
                return
            packet.stream = self._stream
            self._output.mux(packet)

    def close(self) -> None:
        self._input.close()


def _open_output(path: Path, info: VideoInfo, audio_from: str | os.PathLike | None):
    """(output container, audio copier or None) for ``path``."""
    container = load_av().open(str(path), "w", format=_format_for(path))
    try:
        return container, (_AudioCopy(container, audio_from) if audio_from is not None and info.audio else None)
    except Exception:
        container.close()
        raise


class VideoWriter:
    """Encode upright RGB frames to ``path`` like ``info``'s video (same time base, pts, rotation),
    H.264 (``codec``, default libx264) at ``crf``, remuxing the audio of ``audio_from`` (default
    ``info.path``; None: no audio). Use as a context manager; ``close`` flushes and finishes the audio."""

    def __init__(self, path: str | os.PathLike, info: VideoInfo, crf: int = 18, codec: str = "libx264",
                 audio_from: str | os.PathLike | None = "", preset: str = "medium"):
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51 (lower is better quality), got {crf}")
        self.info, self.path = info, Path(path)
        self._container, self._audio = _open_output(self.path, info, info.path if audio_from == "" else audio_from)
        try:
            stream = self._container.add_stream(codec, rate=info.fps)
            stream.width, stream.height = info.width + info.width % 2, info.height + info.height % 2
            stream.pix_fmt = "yuv420p"
            stream.time_base = stream.codec_context.time_base = info.time_base
            if codec in ("libx264", "h264"):
                # no B-frames: decode order = display order, so every frame keeps its pts and duration
                # (with B-frames the mp4 muxer derives durations from shifted dts, and VFR clips lose time)
                stream.options = {"crf": str(crf), "preset": preset, "bf": "0"}
            if info.rotation:
                stream.set_display_rotation(info.rotation)
            self._video = stream
        except Exception:
            self._close_all()
            raise
        self._count = 0
        self._durations: dict[int, int] = {}

    def write(self, image: np.ndarray, pts: int | None = None, duration: int = 0) -> None:
        """Encode one upright uint8 RGB frame at ``pts`` (the input frame's; None: the next frame slot)
        lasting ``duration`` (the input frame's, in the time base; 0: let the muxer guess)."""
        av = load_av()
        frame_image = stored(image, self.info.rotation)
        h, w = frame_image.shape[:2]
        if (w, h) != (self.info.width, self.info.height):
            raise ValueError(f"frame is {w}x{h}, the video {self.info.width}x{self.info.height}")
        if w % 2 or h % 2:  # yuv420p needs even sides: repeat the last row/column
            frame_image = np.pad(frame_image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(frame_image, format="rgb24")
        if pts is None:
            pts = round(self._count / (self.info.fps * self.info.time_base))
        frame.pts, frame.time_base = pts, self.info.time_base
        if duration:
            self._durations[pts] = duration
        if self._audio is not None:
            self._audio.until(float(pts * self.info.time_base))
        self._mux_video(self._video.encode(frame))
        self._count += 1

    def _mux_video(self, packets) -> None:
        """Mux encoded packets, each lasting as long as its input frame did (the encoder's guess
        otherwise: wrong after a variable-rate gap, and the last frame sets the duration)."""
        for packet in packets:
            if packet.pts in self._durations:
                packet.duration = self._durations.pop(packet.pts)
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio and finish the file."""
        try:
            self._mux_video(self._video.encode())
            if self._audio is not None:
                self._audio.until(None)
        finally:
            self._close_all()

    def _close_all(self) -> None:
        for handle in (getattr(self, "_audio", None), getattr(self, "_container", None)):
            if handle is not None:
                handle.close()
        self._audio = self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self._close_all()

    @property
    def frames_written(self) -> int:
        return self._count


def concat_segments(segments: list[Path], info: VideoInfo, dest: str | os.PathLike,
                    audio_from: str | os.PathLike | None = "") -> int:
    """Join video-only segments written by ``VideoWriter`` (same settings, consecutive frames) into
    ``dest`` without re-encoding, the audio of ``audio_from`` (default ``info.path``) copied in by time.
    Returns the number of video packets written."""
    if not segments:
        raise ValueError("no segment to join")
    av = load_av()
    container, audio = _open_output(Path(dest), info, info.path if audio_from == "" else audio_from)
    count = 0
    try:
        with av.open(str(segments[0])) as first:
            stream = container.add_stream_from_template(first.streams.video[0])
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        for segment in segments:
            with av.open(str(segment)) as part:
                for packet in part.demux(part.streams.video[0]):
                    if packet.dts is None:
                        continue
                    if audio is not None:
                        audio.until(float(packet.pts * packet.time_base))
                    packet.stream = stream
                    container.mux(packet)
                    count += 1
        if audio is not None:
            audio.until(None)
    finally:
        if audio is not None:
            audio.close()
        container.close()
    return count


def _format_for(path: Path) -> str | None:
    """The muxer for an output name (a hidden temporary keeps the final suffix)."""
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}.get(path.suffix.lower())
