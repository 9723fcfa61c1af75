"""pipeline.video_io: frames stream out upright and go back in with their timestamps, rotation and audio."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av", reason="video needs the video extra: pip install 'instantrestore[video]'")

from instantrestore.pipeline.video_io import (VideoError, is_video_path, probe_video, read_frames,  # noqa: E402
                                              stored, upright)
from instantrestore.pipeline.video_write import VideoWriter  # noqa: E402
from video_clips import gradient_frame, write_clip  # noqa: E402


def _copy(src: Path, dst: Path, **kwargs) -> None:
    info = probe_video(src)
    with VideoWriter(dst, info, **kwargs) as writer:
        for frame in read_frames(src):
            writer.write(frame.image, frame.pts, frame.duration)


def test_a_copy_keeps_frames_fps_duration_and_audio(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", gradient_frame, 24, fps=12)
    _copy(src, tmp_path / "out.mp4", crf=10)
    a, b = probe_video(src), probe_video(tmp_path / "out.mp4")
    assert (b.frames, b.fps, b.duration, b.audio, b.codec) == (24, Fraction(12), a.duration, "aac", "h264")
    assert a.duration == pytest.approx(2.0)
    originals, copies = list(read_frames(src)), list(read_frames(tmp_path / "out.mp4"))
    assert [f.pts for f in copies] == [f.pts for f in originals]
    assert max(np.abs(x.image.astype(int) - y.image.astype(int)).mean() for x, y in zip(originals, copies)) < 3


def test_audio_packets_are_copied_unchanged(tmp_path: Path) -> None:
    import av

    src = write_clip(tmp_path / "in.mp4", gradient_frame, 12, fps=12)
    _copy(src, tmp_path / "out.mp4")
    packets = []
    for path in (src, tmp_path / "out.mp4"):
        with av.open(str(path)) as c:
            packets.append([bytes(p) for p in c.demux(c.streams.audio[0]) if p.size])
    assert packets[0] and packets[0] == packets[1]


def test_variable_frame_rate_keeps_every_timestamp(tmp_path: Path) -> None:
    pts = [0, 1, 2, 5, 6, 7, 12, 13, 20, 21]
    src = write_clip(tmp_path / "vfr.mp4", gradient_frame, len(pts), pts=pts, time_base=Fraction(1, 12))
    _copy(src, tmp_path / "out.mp4")
    assert [f.time for f in read_frames(tmp_path / "out.mp4")] == pytest.approx([p / 12 for p in pts])
    assert probe_video(tmp_path / "out.mp4").duration == pytest.approx(probe_video(src).duration)


def test_rotation_frames_come_upright_and_go_back_stored(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "rot.mp4", gradient_frame, 6, rotation=90, tone_hz=None)
    info = probe_video(src)
    assert (info.rotation, info.upright_size, info.audio) == (90, (64, 96), None)
    frame = next(read_frames(src))
    assert frame.image.shape == (96, 64, 3)
    _copy(src, tmp_path / "out.mp4")
    out = probe_video(tmp_path / "out.mp4")
    assert (out.rotation, out.width, out.height) == (90, 96, 64)
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    for turn in (0, 90, 180, 270, -90):
        assert np.array_equal(stored(upright(image, turn), turn), image)


def test_bad_inputs_say_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "noise.mp4").write_bytes(b"not a video at all" * 50)
    with pytest.raises(VideoError, match="not a readable video"):
        probe_video(tmp_path / "noise.mp4")
    with pytest.raises(VideoError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")
    src = write_clip(tmp_path / "in.mp4", gradient_frame, 24)
    data = src.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError):
        probe_video(tmp_path / "cut.mp4")
    audio_only = tmp_path / "tone.m4a"
    import av

    with av.open(str(audio_only), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)
    with pytest.raises(VideoError, match="no video stream"):
        probe_video(audio_only)
    assert is_video_path("a/B.MP4") and not is_video_path("a/b.png")


def test_segments_join_into_one_video_with_the_audio(tmp_path: Path) -> None:
    from instantrestore.pipeline.video_write import concat_segments

    src = write_clip(tmp_path / "in.mp4", gradient_frame, 30, fps=12, rotation=180)
    info = probe_video(src)
    frames = list(read_frames(src))
    parts = []
    for k, chunk in enumerate((frames[:12], frames[12:24], frames[24:])):
        parts.append(tmp_path / f"seg{k}.mp4")
        with VideoWriter(parts[-1], info, audio_from=None) as writer:
            for f in chunk:
                writer.write(f.image, f.pts, f.duration)
    assert probe_video(parts[0]).audio is None
    assert concat_segments(parts, info, tmp_path / "out.mp4") == 30
    out = probe_video(tmp_path / "out.mp4")
    assert (out.frames, out.fps, out.audio, out.rotation) == (30, Fraction(12), "aac", 180)
    assert out.duration == pytest.approx(info.duration)
    assert [f.pts for f in read_frames(tmp_path / "out.mp4")] == [f.pts for f in frames]
