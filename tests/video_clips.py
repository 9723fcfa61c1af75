"""Small clips for the video tests, made with PyAV: frames from a callable, an optional sine tone."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def write_clip(path: Path, frame: Callable[[int], np.ndarray], count: int, fps: int = 12,
               tone_hz: float | None = 440.0, rotation: int = 0, pts: Sequence[int] | None = None,
               time_base: Fraction | None = None) -> Path:
    """Encode ``count`` frames ``frame(i)`` (uint8 RGB, stored orientation) as H.264 at ``fps`` with a
    mono AAC sine tone as long as the video (None: no audio); ``pts`` (in ``time_base``, default
    1/fps) makes a variable-frame-rate clip; ``rotation`` writes a display rotation."""
    import av

    time_base = time_base or Fraction(1, fps)
    pts = list(pts) if pts is not None else list(range(count))
    with av.open(str(path), "w") as out:
        first = frame(0)
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = first.shape[1], first.shape[0]
        video.pix_fmt = "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        video.options = {"crf": "18", "preset": "ultrafast"}
        if rotation:
            video.set_display_rotation(rotation)
        audio = None
        if tone_hz is not None:
            audio = out.add_stream("aac", rate=16000)
            audio.layout = "mono"
        for i in range(count):
            f = av.VideoFrame.from_ndarray(frame(i) if i else first, format="rgb24")
            f.pts, f.time_base = pts[i], time_base
            for packet in video.encode(f):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            seconds = float((pts[-1] + 1) * time_base) if pts else 0.0
            t = np.arange(int(16000 * seconds)) / 16000
            samples = (0.2 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, 0
            for packet in audio.encode(af):
                out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def gradient_frame(i: int, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    """A moving colour gradient (no face), ``size`` = (width, height)."""
    w, h = size
    x = np.arange(w)[None, :, None]
    y = np.arange(h)[:, None, None]
    img = np.concatenate([(x * 2 + i * 5) % 256 + 0 * y, (y * 3 + 0 * x) % 256, np.full((h, w, 1), 90)], axis=2)
    return img.astype(np.uint8)


def pan_zoom(photo: np.ndarray, count: int, size: tuple[int, int] = (160, 120), zoom: float = 0.8,
             pan: float = 0.15) -> Callable[[int], np.ndarray]:
    """frame(i) of a camera move over ``photo``: a window of the photo's height at 4:3 panning left to
    right by ``pan`` of the width and zooming in to ``zoom`` of its size, resized to ``size``."""
    import cv2

    h, w = photo.shape[:2]
    out_w, out_h = size

    def frame(i: int) -> np.ndarray:
        t = i / max(count - 1, 1)
        win_h = h * (1 - (1 - zoom) * t)
        win_w = win_h * out_w / out_h
        cx = w / 2 + (t - 0.5) * pan * w
        cy = h / 2
        scale = out_w / win_w
        matrix = np.array([[scale, 0, out_w / 2 - cx * scale], [0, scale, out_h / 2 - cy * scale]])
        return cv2.warpAffine(photo, matrix, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)

    return frame
