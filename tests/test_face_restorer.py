"""face_restorer.py: whole photos -> every face matched, restored with its person's references, pasted back.

Random micro weights (the restored pixels mean nothing; where they go and what is reported does)
and the real photos of ../shared/realfaces (skipped where absent)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from instantrestore import InstantRestore
from instantrestore.pipeline.album import Album
from instantrestore.pipeline.face_restorer import FaceRestorer
from instantrestore.faces.paste import paste_region, scale_matrix
from instantrestore.faces.verify import ReferenceWarning
from instantrestore.utils.images import load_image

K = 3


@pytest.fixture(scope="module")
def model(micro_weights):
    with pytest.warns(UserWarning):  # random weights say so
        return InstantRestore.from_pretrained(micro_weights / "model")


def changeable(photo_shape, report) -> np.ndarray:
    """Pixels the pasted faces may have changed (the union of their paste regions)."""
    region = np.zeros(photo_shape[:2], bool)
    for face in report:
        if face["restored"] is not None:
            matrix = scale_matrix(np.array(face["matrix"]), face["crop_size"], face["restored_size"])
            region |= paste_region(matrix, face["restored_size"], photo_shape[:2])
    return region


def assert_only_faces_changed(photo: np.ndarray, restored: np.ndarray, report) -> None:
    assert restored.shape == photo.shape and restored.dtype == np.uint8
    region = changeable(photo.shape, report)
    assert np.array_equal(restored[~region], photo[~region])
    if report.restored:
        assert (restored[region] != photo[region]).any()


# ------------------------------------------------------------------ no real photos needed
def test_no_face_photo_is_reported_and_returned_unchanged(model):
    photo = np.full((120, 160, 3), 90, np.uint8)
    restored, report = FaceRestorer(model, fallback="none").enhance(photo)
    assert np.array_equal(restored, photo) and restored is not photo
    assert len(report) == 0 and report.problems == ["no face found"] and report.restored == 0
    assert report.to_json() == {"photo_size": [160, 120], "faces": [], "problems": ["no face found"]}
    pil, pil_report = FaceRestorer(model, fallback="none").enhance(Image.fromarray(photo))
    assert isinstance(pil, Image.Image) and np.array_equal(np.asarray(pil), photo)


def test_bad_arguments_are_refused(model):
    with pytest.raises(ValueError, match="unknown"):
        FaceRestorer(model, unknown="maybe")
    with pytest.raises(ValueError, match="k must be"):
        FaceRestorer(model, k=0)
    with pytest.raises(ValueError, match="uint8"):
        FaceRestorer(model).enhance(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(TypeError):
        FaceRestorer(model).enhance(42)


# ------------------------------------------------------------------ real photos
@pytest.fixture(scope="module")
def album_dir(realfaces_dir, tmp_path_factory):
    """obama: aligned references o1-o5; 00022, 00075: 4 celebref references each (links, no copies)."""
    root = tmp_path_factory.mktemp("faces") / "album"
    (root / "obama").mkdir(parents=True)
    for path in sorted((realfaces_dir / "obama" / "aligned_references").iterdir())[:5]:
        (root / "obama" / path.name).symlink_to(path)
    for person in ("00022", "00075"):
        (root / person).mkdir()
        refs = sorted((realfaces_dir / "celebref" / person / "references").glob("*.png"), key=lambda p: int(p.stem))
        for path in refs[1:5]:
            (root / person / path.name).symlink_to(path)
    return root


def _photo(path) -> np.ndarray:
    return np.asarray(load_image(path))


@pytest.mark.slow
def test_every_face_matched_restored_with_its_persons_references_and_pasted(model, album_dir, realfaces_dir):
    album = Album(album_dir)
    restorer = FaceRestorer(model, album=album, k=K)
    photos = [realfaces_dir / "obama" / "raw_photos" / name for name in ("o6.jpg", "o8.png")]
    photos.append(realfaces_dir / "realworld_lq" / "i3.jfif")  # small and really degraded
    for path in photos:
        photo = _photo(path)
        restored, report = restorer.enhance(path)
        assert len(report) == 1 and not report.problems, (path.name, report)
        face = report[0]
        assert face["person"] == "obama" and face["similarity"] >= album.threshold, (path.name, face)
        assert face["restored"] == "references" and face["fallback"] is None, face
        assert face["strength"] == 1.0  # the restorer's default, as resolved for this face
        assert len(face["references"]) == K and set(face["references"]) <= set(album.references("obama").names)
        assert face["restored_size"] == model.config.image_size
        assert_only_faces_changed(photo, restored, report)
        json.dumps(report.to_json())  # the report is plain JSON data
    assert album.encodes == {"obama": 1}  # once for all photos; only the person the faces matched
    assert album.prepared == {"obama": 1, "00022": 1, "00075": 1}  # every person, to match faces against

    # a second run over the same album (a new process) encodes and prepares nothing, same result
    again = Album(album_dir)
    restored_again, _ = FaceRestorer(model, album=again, k=K).enhance(photos[-1])
    assert again.encodes == {} and again.prepared == {}
    assert np.array_equal(restored_again, restored)


@pytest.mark.slow
def test_two_people_in_one_photo_each_matched_to_their_own(model, album_dir, realfaces_dir):
    left = Image.open(realfaces_dir / "celebref" / "00022" / "references" / "0.png").convert("RGB")
    right = Image.open(realfaces_dir / "celebref" / "00075" / "references" / "0.png").convert("RGB")
    canvas = Image.new("RGB", (1100, 560), (40, 60, 80))
    canvas.paste(left, (20, 24))
    canvas.paste(right, (568, 24))
    photo = np.asarray(canvas)
    restored, report = FaceRestorer(model, album=Album(album_dir), k=K).enhance(photo)
    people = sorted((f["box"][0], f["person"]) for f in report)
    assert [p for _, p in people] == ["00022", "00075"], report.faces
    assert all(f["restored"] == "references" for f in report)
    assert_only_faces_changed(photo, restored, report)


@pytest.mark.slow
def test_unknown_face_restored_blind_or_kept(model, album_dir, realfaces_dir, tmp_path):
    strangers = tmp_path / "album"
    for person in ("00022", "00075"):
        (strangers / person).mkdir(parents=True)
        for path in (album_dir / person).iterdir():
            (strangers / person / path.name).symlink_to(path.resolve())
    path = realfaces_dir / "obama" / "raw_photos" / "o8.png"
    photo = _photo(path)
    album = Album(strangers)

    kept, report = FaceRestorer(model, album=album, unknown="keep").enhance(path)
    face = report[0]
    assert face["person"] is None and face["closest"] in ("00022", "00075") and face["restored"] is None
    assert face["fallback"]["step"] == "match" and "kept" in face["fallback"]["reason"]
    assert np.array_equal(kept, photo)

    blind, report = FaceRestorer(model, album=album, unknown="blind").enhance(path)
    assert report[0]["restored"] == "blind" and report[0]["references"] == [] and report[0]["strength"] is None
    assert "restored blind" in report[0]["fallback"]["reason"]
    assert_only_faces_changed(photo, blind, report)
    assert album.encodes == {}

    no_album, report = FaceRestorer(model).enhance(path)
    assert report[0]["restored"] == "blind"
    assert_only_faces_changed(photo, no_album, report)


@pytest.mark.slow
def test_references_of_someone_else_refused_in_strict_mode_else_warned(model, realfaces_dir, tmp_path):
    album_root = tmp_path / "album"
    (album_root / "obama").mkdir(parents=True)
    for path in sorted((realfaces_dir / "obama" / "aligned_references").iterdir())[:4]:
        (album_root / "obama" / path.name).symlink_to(path)
    (album_root / "obama" / "zz_stranger.png").symlink_to(realfaces_dir / "celebref" / "00022" / "references" / "0.png")
    album = Album(album_root)
    assert [c.name for c in album.references("obama").verification.outliers] == ["zz_stranger.png"]
    path = realfaces_dir / "obama" / "raw_photos" / "o6.jpg"
    photo = _photo(path)

    refused, report = FaceRestorer(model, album=album, strict=True).enhance(path)
    face = report[0]
    assert face["person"] == "obama" and face["restored"] is None
    assert face["fallback"]["step"] == "verify" and "zz_stranger.png" in face["fallback"]["reason"]
    assert np.array_equal(refused, photo)

    with pytest.warns(ReferenceWarning, match="zz_stranger.png"):
        warned, report = FaceRestorer(model, album=album, k=K).enhance(path)
    face = report[0]
    assert face["restored"] == "references" and any("zz_stranger.png" in w for w in face["warnings"])
    assert "zz_stranger.png" not in face["references"]  # ranked last by identity
    assert_only_faces_changed(photo, warned, report)


@pytest.mark.slow
def test_a_failing_step_keeps_the_face_and_says_why(model, album_dir, realfaces_dir, monkeypatch):
    album = Album(album_dir)
    restorer = FaceRestorer(model, album=album, k=K)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "restore", broken)
    path = realfaces_dir / "obama" / "raw_photos" / "o8.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failure is reported, not raised or warned
        restored, report = restorer.enhance(path)
    face = report[0]
    assert face["person"] == "obama" and face["restored"] is None and face["references"] == []
    assert face["fallback"] == {"step": "restore", "reason": "RuntimeError: out of memory; kept as it is"}
    assert np.array_equal(restored, _photo(path))
