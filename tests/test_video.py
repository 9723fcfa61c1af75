"""restore_video on clips: a real face over a camera move (one track, the right person in every frame,
the video's properties and audio kept), no face, a stopped run resumed, outputs never overwritten."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av", reason="video needs the video extra: pip install 'instantrestore[video]'")

from instantrestore.pipeline import restore_video as rv  # noqa: E402
from instantrestore.pipeline.face_restorer import FaceRestorer  # noqa: E402
from instantrestore.pipeline.video_io import VideoError, probe_video, read_frames  # noqa: E402
from video_clips import gradient_frame, pan_zoom, write_clip  # noqa: E402


@pytest.fixture(scope="module")
def real_run(realfaces_dir: Path, tmp_path_factory) -> dict:
    """A 3 s, 10 fps, 160x120 pan and zoom over one raw obama photo with a 440 Hz tone, restored with
    the shipped tiny model and an album of obama (aligned references) and one celebref person."""
    from instantrestore.assets import load_shipped_model
    from instantrestore.pipeline.album import Album
    from instantrestore.utils.images import load_image

    root = tmp_path_factory.mktemp("video")
    for person, folder in (("obama", realfaces_dir / "obama" / "aligned_references"),
                           ("c00005", realfaces_dir / "celebref" / "00005" / "references")):
        (root / "album" / person).mkdir(parents=True)
        for photo in sorted(folder.glob("*.png"))[:6]:
            (root / "album" / person / photo.name).symlink_to(photo)
    photo = np.asarray(load_image(realfaces_dir / "obama" / "raw_photos" / "o1.jpg"))
    src = write_clip(root / "clip.mp4", pan_zoom(photo, 30), 30, fps=10)
    before = src.read_bytes()
    with pytest.warns(Warning):  # the tiny synthetic-world model on real frames
        model = load_shipped_model()
    restorer = FaceRestorer(model, album=Album(root / "album", crop_size=256), k=4)
    report = rv.restore_video(restorer, src, root / "out.mp4", crf=20, chunk_seconds=1.0)
    return {"root": root, "src": src, "before": before, "report": report, "restorer": restorer}


@pytest.mark.slow  # the shared fixture: ~25 s (album, model, 30 frames)
def test_real_clip_one_track_matched_in_every_frame(real_run: dict) -> None:
    report = real_run["report"]
    assert report["frames"] == 30 and len(report["tracks"]) == 1
    track = report["tracks"][0]
    assert (track["first_frame"], track["last_frame"], track["person"], track["restored"]) == (0, 29, "obama",
                                                                                                "references")
    assert track["votes"] == {"obama": 30} and track["vote_share"] == 1.0  # every frame matched obama
    assert track["fallback"] is None and track["failed_frames"] == [] and len(track["references"]) == 4
    assert report["faces_restored"] == 30
    assert set(report["seconds"]) == set(rv.PARTS) and report["seconds"]["restore"] > 0


@pytest.mark.slow  # the shared fixture: ~25 s (album, model, 30 frames)
def test_real_clip_keeps_frames_fps_duration_and_audio(real_run: dict) -> None:
    src, out = real_run["src"], real_run["root"] / "out.mp4"
    a, b = probe_video(src), probe_video(out)
    assert (b.frames, b.fps, b.audio, b.width, b.height) == (30, Fraction(10), "aac", 160, 120)
    assert b.duration == pytest.approx(a.duration) == pytest.approx(3.0)
    assert [f.pts for f in read_frames(out)] == [f.pts for f in read_frames(src)]
    assert src.read_bytes() == real_run["before"]  # the input is only read
    saved = json.loads((real_run["root"] / "out.json").read_text())
    assert saved["tracks"][0]["person"] == "obama"
    assert not rv.work_folder(out).exists()  # the work folder goes once the output is complete
    # the face changed, the corners far from it did not (beyond the codec's own error)
    first_in, first_out = next(read_frames(src)).image.astype(int), next(read_frames(out)).image.astype(int)
    x0, y0, x1, y1 = (int(v) for v in saved["tracks"][0]["first_box"])
    face = np.abs(first_in[y0:y1, x0:x1] - first_out[y0:y1, x0:x1]).mean()
    corner = np.abs(first_in[:20, :20] - first_out[:20, :20]).mean()  # H.264 twice (the clip, then the output)
    assert face > 2 * corner and corner < 5


@pytest.mark.slow  # the shared fixture: ~25 s (album, model, 30 frames)
def test_an_existing_output_is_never_replaced_without_overwrite(real_run: dict) -> None:
    out = real_run["root"] / "out.mp4"
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        rv.restore_video(real_run["restorer"], real_run["src"], out)
    with pytest.raises(ValueError, match="replace the input"):
        rv.restore_video(real_run["restorer"], real_run["src"], real_run["src"], overwrite=True)
    assert out.read_bytes() == before


def test_no_face_video_is_reencoded_unchanged_with_a_problem_said(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "wall.mp4", gradient_frame, 12)
    report = rv.restore_video(FaceRestorer(None), src, tmp_path / "out.mp4")
    assert report["tracks"] == [] and report["frames"] == 12 and "no face" in report["problems"][0]
    assert probe_video(tmp_path / "out.mp4").frames == 12


class _Stop(RuntimeError):
    """Stands for a run stopped mid-way (killed, Ctrl-C)."""


def test_a_stopped_run_resumes_from_its_last_finished_chunk(tmp_path: Path, monkeypatch) -> None:
    src = write_clip(tmp_path / "wall.mp4", gradient_frame, 24, fps=12)
    dest = tmp_path / "out.mp4"
    real = rv._restore_frame
    calls: list[int] = []
    stop = [15]

    def stop_at_15(restorer, image, index, *args):
        calls.append(index)
        if index in stop:
            stop.clear()
            raise _Stop
        return real(restorer, image, index, *args)

    monkeypatch.setattr(rv, "_restore_frame", stop_at_15)
    with pytest.raises(_Stop):
        rv.restore_video(FaceRestorer(None), src, dest, chunk_seconds=0.5)  # chunks of 6 frames
    assert not dest.exists() and not rv.report_path(dest).exists()
    assert sorted(p.name for p in rv.work_folder(dest).glob("chunk*.mp4")) == ["chunk00000.mp4", "chunk00001.mp4"]
    calls.clear()
    report = rv.restore_video(FaceRestorer(None), src, dest, chunk_seconds=0.5)
    assert report["resumed_chunks"] == 2 and calls == list(range(12, 24))  # frames 0-11 were not redone
    assert [f.pts for f in read_frames(dest)] == [f.pts for f in read_frames(src)]
    assert probe_video(dest).audio == "aac"


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match="not a readable video"):
        rv.restore_video(FaceRestorer(None), tmp_path / "broken.mp4", tmp_path / "out.mp4")
    with pytest.raises(ValueError, match="must be a video file"):
        rv.restore_video(FaceRestorer(None), tmp_path / "broken.mp4", tmp_path / "out.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def test_the_cli_routes_a_video_and_refuses_video_flags_for_photos(tmp_path: Path, capsys) -> None:
    from instantrestore.cli import main

    src = write_clip(tmp_path / "wall.mp4", gradient_frame, 8)
    out = tmp_path / "restored.mp4"
    assert main(["restore", str(src), "--out", str(out), "--backbone", "tiny", "--crf", "30",
                 "--detect-every", "2"]) == 0
    assert probe_video(out).frames == 8
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["settings"]["crf"] == 30 and report["settings"]["detect_every"] == 2
    assert main(["restore", str(src), "--out", str(out), "--backbone", "tiny"]) == 2  # exists: refused
    assert "--overwrite" in capsys.readouterr().err
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(gradient_frame(0)).save(photo)
    assert main(["restore", str(photo), "--out", str(tmp_path / "o"), "--crf", "20", "--backbone", "tiny"]) == 2
    assert "video inputs" in capsys.readouterr().err


def test_upscale_enlarges_every_frame_and_keeps_the_timing(tmp_path: Path) -> None:
    """--upscale for video: the frames come out twice as large (the photos' Lanczos background where no face
    is), the same count and duration; the setting is recorded so a run made otherwise is not resumed."""
    from instantrestore.pipeline.upsample import ClassicalUpsampler

    src = write_clip(tmp_path / "wall.mp4", gradient_frame, 6)
    before = probe_video(src)
    report = rv.restore_video(FaceRestorer(None), src, tmp_path / "out.mp4", upscale=2, crf=0)
    after = probe_video(tmp_path / "out.mp4")
    assert (after.width, after.height) == (2 * before.width, 2 * before.height) and after.frames == before.frames
    assert abs(after.duration - before.duration) < 1e-3 and report["settings"]["upscale"] == 2
    assert report["output_video"]["width"] == 2 * before.width
    first_in, first_out = next(read_frames(src)).image, next(read_frames(tmp_path / "out.mp4")).image
    expected = ClassicalUpsampler()(first_in, 2).astype(int)
    assert np.abs(first_out.astype(int) - expected).mean() < 3  # H.264 at crf 0 (yuv420p) round trip


def test_photo_only_flags_are_refused_for_a_video(tmp_path: Path, capsys) -> None:
    from instantrestore.cli import main

    src = write_clip(tmp_path / "wall.mp4", gradient_frame, 4)
    rc = main(["restore", str(src), "--out", str(tmp_path / "r.mp4"), "--backbone", "tiny", "--save-faces"])
    assert rc == 2 and "--save-faces: for photos only" in capsys.readouterr().err
    assert not (tmp_path / "r.mp4").exists()
    rc = main(["restore", str(src), "--out", str(tmp_path / "r.mp4"), "--backbone", "tiny", "--upscale", "9"])
    assert rc == 2 and "upscale must be a number from 1 to 8" in capsys.readouterr().err
