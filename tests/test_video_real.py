"""restore_video on clips built from real photos: a portrait phone clip stored sideways with a display
rotation, and two album people side by side (one track each, each the right person on every frame)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av", reason="video needs the video extra: pip install 'instantrestore[video]'")

from instantrestore.pipeline import restore_video as rv  # noqa: E402
from instantrestore.pipeline.face_restorer import FaceRestorer  # noqa: E402
from instantrestore.pipeline.video_io import probe_video, read_frames, stored  # noqa: E402
from video_clips import write_clip  # noqa: E402


def _album(realfaces: Path, root: Path) -> Path:
    """obama (aligned references o1-o6) and c00005 (celebref references 0, 1, 10-13): the photos the
    clips show (obama o8, c00005 2.png) are not in it."""
    for person, folder in (("obama", realfaces / "obama" / "aligned_references"),
                           ("c00005", realfaces / "celebref" / "00005" / "references")):
        (root / "album" / person).mkdir(parents=True)
        for photo in sorted(folder.glob("*.png"))[:6]:
            (root / "album" / person / photo.name).symlink_to(photo)
    return root / "album"


@pytest.fixture(scope="module")
def restorer(realfaces_dir: Path, tmp_path_factory) -> FaceRestorer:
    """The shipped tiny model (its faces mean nothing on real frames: these tests pin the pipeline)."""
    from instantrestore.assets import load_shipped_model
    from instantrestore.pipeline.album import Album

    root = tmp_path_factory.mktemp("album")
    with pytest.warns(Warning):  # the tiny synthetic-world model on real frames
        model = load_shipped_model()
    return FaceRestorer(model, album=Album(_album(realfaces_dir, root), crop_size=256), k=4)


def _photo(path: Path, side: int) -> np.ndarray:
    import cv2

    from instantrestore.utils.images import load_image

    return cv2.resize(np.asarray(load_image(path)), (side, side), interpolation=cv2.INTER_AREA)


def test_a_portrait_phone_clip_keeps_its_rotation_and_the_face_is_found_on_every_frame(
        realfaces_dir: Path, restorer: FaceRestorer, tmp_path: Path) -> None:
    import cv2

    face = _photo(realfaces_dir / "obama" / "aligned_references" / "o8.png", 150)
    count = 8

    def upright(i: int) -> np.ndarray:  # a 150x200 portrait shot, the camera drifting down a little
        canvas = np.full((200, 150, 3), 70, np.uint8)
        canvas[20 + i:170 + i] = face
        return cv2.GaussianBlur(canvas, (3, 3), 0)

    # a phone stores the sensor's landscape frames and says "turn 90 degrees" in the display matrix
    src = write_clip(tmp_path / "phone.mp4", lambda i: stored(upright(i), 90), count, fps=10, rotation=90)
    info = probe_video(src)
    assert (info.rotation, info.width, info.height, info.upright_size) == (90, 200, 150, (150, 200))
    report = rv.restore_video(restorer, src, tmp_path / "out.mp4", crf=20)
    assert len(report["tracks"]) == 1
    track = report["tracks"][0]
    assert track["detected_frames"] == count and track["frames"] == count  # found on every (upright) frame
    assert (track["person"], track["votes"]) == ("obama", {"obama": count})
    assert track["failed_frames"] == [] and report["faces_restored"] == count
    out = probe_video(tmp_path / "out.mp4")
    assert (out.rotation, out.frames, out.width, out.height) == (90, count, 200, 150)
    first = next(read_frames(tmp_path / "out.mp4")).image
    assert first.shape == (200, 150, 3)  # read back upright, as the input


def test_two_people_side_by_side_get_one_track_each_matched_on_every_frame(
        realfaces_dir: Path, restorer: FaceRestorer, tmp_path: Path) -> None:
    left = _photo(realfaces_dir / "obama" / "aligned_references" / "o8.png", 150)
    right = _photo(realfaces_dir / "celebref" / "00005" / "references" / "2.png", 150)
    count = 8

    def frame(i: int) -> np.ndarray:  # the two drift towards each other, without touching
        canvas = np.full((170, 340, 3), 60, np.uint8)
        canvas[10:160, 5 + i:155 + i] = left
        canvas[10:160, 185 - i:335 - i] = right
        return canvas

    src = write_clip(tmp_path / "two.mp4", frame, count, fps=10, tone_hz=None)
    report = rv.restore_video(restorer, src, tmp_path / "out.mp4", crf=20)
    tracks = sorted(report["tracks"], key=lambda t: t["first_box"][0])  # left to right
    assert len(tracks) == 2
    for track, person in zip(tracks, ("obama", "c00005")):
        assert (track["person"], track["restored"]) == (person, "references")
        assert (track["first_frame"], track["last_frame"], track["detected_frames"]) == (0, count - 1, count)
        assert track["votes"] == {person: count} and track["vote_share"] == 1.0  # every frame: the right one
        assert track["failed_frames"] == []
    saved = json.loads((tmp_path / "out.json").read_text())
    assert sorted(t["person"] for t in saved["tracks"]) == ["c00005", "obama"]
    assert report["faces_restored"] == 2 * count and probe_video(tmp_path / "out.mp4").frames == count


def test_temporal_smoothing_leaves_a_still_face_as_per_frame_restoration(
        realfaces_dir: Path, restorer: FaceRestorer, tmp_path: Path) -> None:
    """--temporal blends each frame's decoder attention and latent with the previous frame's: on a face
    that does not move or change, that is the per-frame restoration (to the codec's error)."""
    face = _photo(realfaces_dir / "obama" / "aligned_references" / "o8.png", 150)
    canvas = np.full((170, 170, 3), 60, np.uint8)
    canvas[10:160, 10:160] = face
    src = write_clip(tmp_path / "still.mp4", lambda i: canvas, 5, fps=10, tone_hz=None)
    plain = rv.restore_video(restorer, src, tmp_path / "plain.mp4", crf=10)
    smooth = rv.restore_video(restorer, src, tmp_path / "smooth.mp4", crf=10, temporal=0.5)
    assert smooth["settings"]["temporal"] == 0.5 and "temporal" not in plain["settings"]
    assert [t["person"] for t in smooth["tracks"]] == ["obama"] and smooth["tracks"][0]["failed_frames"] == []
    a = [f.image.astype(float) for f in read_frames(tmp_path / "plain.mp4")]
    b = [f.image.astype(float) for f in read_frames(tmp_path / "smooth.mp4")]
    assert len(a) == len(b) == 5
    assert max(np.abs(x - y).mean() for x, y in zip(a, b)) < 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        rv.restore_video(restorer, src, tmp_path / "bad.mp4", temporal=1.0)
