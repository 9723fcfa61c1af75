"""restore on a folder of videos (pipeline.restore_videos): one output and report per video, resumable per
file, files of the user's and outputs made otherwise never replaced without overwrite."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("av", reason="video needs the video extra: pip install 'instantrestore[video]'")

from instantrestore.pipeline.face_restorer import FaceRestorer  # noqa: E402
from instantrestore.pipeline.restore_videos import expand_videos, plan_videos, restore_videos  # noqa: E402
from instantrestore.pipeline.video_io import probe_video  # noqa: E402
from video_clips import gradient_frame, write_clip  # noqa: E402


def _videos(folder: Path) -> Path:
    folder.mkdir()
    write_clip(folder / "a.mp4", gradient_frame, 6, tone_hz=None)
    write_clip(folder / "b.mov", gradient_frame, 4, tone_hz=None)
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_each_video_is_restored_once_and_a_rerun_skips_the_done_ones(tmp_path: Path) -> None:
    videos, out = _videos(tmp_path / "videos"), tmp_path / "out"
    restorer = FaceRestorer(None)  # no face in these clips: the pipeline alone
    assert [p.name for p in expand_videos([videos])] == ["a.mp4", "b.mov"]
    plan = plan_videos(restorer, [videos], out, crf=30)
    assert [d.name for _, d in plan.todo] == ["a_restored.mp4", "b_restored.mp4"]
    result = restore_videos(restorer, plan, crf=30)
    assert len(result["restored"]) == 2 and result["failed"] == []
    assert probe_video(out / "a_restored.mp4").frames == 6 and probe_video(out / "b_restored.mp4").frames == 4
    assert json.loads((out / "b_restored.json").read_text())["input"] == str(videos / "b.mov")

    again = plan_videos(restorer, [videos], out, crf=30)
    assert again.todo == [] and len(again.done) == 2 and "skipping 2" in again.lines()[0]
    other = plan_videos(restorer, [videos], out, crf=20)  # other settings: kept, and said
    assert other.todo == [] and [p.name for p in other.other] == ["a_restored.mp4", "b_restored.mp4"]
    assert "--overwrite" in other.lines()[0]
    assert len(plan_videos(restorer, [videos], out, overwrite=True, crf=20).todo) == 2


def test_a_file_of_the_users_is_kept_and_a_bad_video_does_not_stop_the_others(tmp_path: Path) -> None:
    videos, out = _videos(tmp_path / "videos"), tmp_path / "out"
    (videos / "broken.mp4").write_bytes(b"\x00" * 500)
    out.mkdir()
    (out / "a_restored.mp4").write_bytes(b"the user's own file")
    restorer = FaceRestorer(None)
    plan = plan_videos(restorer, [videos], out)
    assert [p.name for p in plan.foreign] == ["a_restored.mp4"]
    result = restore_videos(restorer, plan)
    assert (out / "a_restored.mp4").read_bytes() == b"the user's own file"
    assert [Path(f["input"]).name for f in result["failed"]] == ["broken.mp4"]
    assert len(result["restored"]) == 1 and probe_video(out / "b_restored.mp4").frames == 4
    (videos / "p.png").write_bytes(b"")
    assert expand_videos([videos]) is None  # a folder of photos that holds a clip stays a photo job


def test_the_cli_restores_a_folder_of_videos_into_a_folder(tmp_path: Path, capsys) -> None:
    from instantrestore.cli import main

    videos, out = _videos(tmp_path / "videos"), tmp_path / "out"
    assert main(["restore", str(videos), "--out", str(out), "--backbone", "tiny", "--crf", "30"]) == 0
    assert "2 video(s) restored" in capsys.readouterr().out
    assert main(["restore", str(videos), "--out", str(out), "--backbone", "tiny", "--crf", "30"]) == 0
    assert "0 video(s) restored" in capsys.readouterr().out and (out / "b_restored.json").is_file()


def test_a_photo_folder_holding_videos_says_they_are_left_alone(tmp_path: Path, capsys) -> None:
    import numpy as np
    from PIL import Image

    from instantrestore.cli import main

    folder, out = _videos(tmp_path / "mixed"), tmp_path / "out"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(folder / "photo.png")  # no face in it
    assert main(["restore", str(folder), "--out", str(out), "--backbone", "tiny"]) == 0
    err = capsys.readouterr().err
    assert "holds 2 video(s) beside its photos (a.mp4, b.mov)" in err and "left alone" in err
    assert not list(out.glob("*restored.mp4"))
