"""face_restorer.py: whole photos -> every face matched, restored with its person's references, pasted back.

Random micro weights (the restored pixels mean nothing; where they go and what is reported does)
and the real photos of ../shared/realfaces (skipped where absent)."""
from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import instantrestore.pipeline.album as album_module
import instantrestore.pipeline.face_restorer as restorer_module
from instantrestore import InstantRestore
from instantrestore.faces.align import AlignedFace
from instantrestore.faces.detect import Face
from instantrestore.pipeline.album import Album
from instantrestore.pipeline.album_match import MatchRule
from instantrestore.pipeline.face_restorer import FaceRestorer
from instantrestore.faces.mask import inside_polygon
from instantrestore.faces.verify import ReferenceWarning
from instantrestore.utils.images import load_image

K = 3


@pytest.fixture(scope="module")
def model(micro_weights):
    with pytest.warns(UserWarning):  # random weights say so
        return InstantRestore.from_pretrained(micro_weights / "model")


def changeable(photo_shape, report) -> np.ndarray:
    """Pixels the pasted faces may have changed: the union of their outlines (the face's from dlib's landmarks,
    or the crop's square for a stub face without landmarks), as the report gives them."""
    region = np.zeros(photo_shape[:2], bool)
    for face in report:
        if face["restored"] is not None:
            region |= inside_polygon(np.array(face["outline"]), photo_shape[:2])
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
    assert report.to_json() == {"photo_size": [160, 120], "output_size": [160, 120], "faces": [],
                                "problems": ["no face found"]}
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


class MeanColourEmbedder:
    """Stand-in identity model: the crop's mean colour (no dlib)."""

    name = "mean-colour"
    threshold = 0.9

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(images.float().mean(dim=(2, 3)) + 1.5, dim=-1)


def _stub_face(image, box, score, size=64):
    """An AlignedFace of ``box`` found by the CNN detector (whose faces the screen does not re-check)."""
    x0, y0, x1, y1 = box
    scale = size / (x1 - x0)
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    face = Face(box=tuple(float(v) for v in box), landmarks68=np.zeros((68, 2)), landmarks5=np.zeros((5, 2)),
                score=score, detector="cnn")
    return AlignedFace(crop=crop, matrix=matrix, face=face, size=size)


@pytest.fixture
def tinted(tmp_path, monkeypatch):
    """album/{ann,bob} of tinted squares (the stub embedder tells tints apart); a photo with ann's face."""
    def square(seed, tint):
        noise = np.random.default_rng(seed).integers(-40, 41, (64, 64, 3))
        return np.clip(128 + np.array(tint) + noise, 0, 255).astype(np.uint8)
    for person, tint in (("ann", (100, -100, -100)), ("bob", (-100, -100, 100))):
        (tmp_path / "album" / person).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(square(i + len(person), tint)).save(tmp_path / "album" / person / f"{i}.png")
    monkeypatch.setattr(album_module, "align_reference", lambda image, size, *a: (image, "stub"))
    monkeypatch.setattr(album_module, "aligned_landmarks", lambda crop: np.zeros((68, 2)))
    photo = np.random.default_rng(7).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    photo[40:104, 60:124] = square(9, (100, -100, -100))
    return tmp_path / "album", photo


def test_duplicate_and_weak_detections_are_dropped_before_matching(model, tinted, monkeypatch):
    root, photo = tinted
    monkeypatch.setattr(restorer_module, "align_photo", lambda image, *a, **k: [
        _stub_face(image, (60, 40, 124, 104), 2.0), _stub_face(image, (70, 50, 118, 98), 1.5),
        _stub_face(image, (140, 110, 180, 150), 0.3)])
    album = Album(root, embedder=MeanColourEmbedder(), crop_size=64, cache_dir=False)
    restored, report = FaceRestorer(model, album=album, k=2).enhance(photo)
    assert [f["restored"] for f in report] == ["references", None, None] and report[0]["person"] == "ann"
    assert [f["fallback"]["step"] for f in report[1:]] == ["detect", "detect"]
    assert report[1]["fallback"]["reason"].startswith("duplicate of face 0")
    assert report[2]["fallback"]["reason"].startswith("weak detection, likely not a face: score 0.30")
    assert report[1]["person"] is None and report[1]["closest"] is None  # never matched to anyone
    assert_only_faces_changed(photo, restored, report)


def test_too_close_to_call_is_restored_blind_and_a_small_lead_at_reduced_strength(model, tinted, monkeypatch):
    root, photo = tinted
    monkeypatch.setattr(restorer_module, "align_photo",
                        lambda image, *a, **k: [_stub_face(image, (60, 40, 124, 104), 2.0)])
    embedder = MeanColourEmbedder()
    strict = Album(root, embedder=embedder, crop_size=64, cache_dir=False,
                   rule=MatchRule(threshold=0.9, degraded_threshold=0.9, margin=5.0, degraded_margin=5.0))
    _, report = FaceRestorer(model, album=strict, k=2).enhance(photo)
    face = report[0]
    assert face["restored"] == "blind" and face["person"] is None and face["closest"] == "ann"
    assert face["second"] == "bob" and face["margin"] > 0 and face["degradation"] is not None
    assert face["fallback"]["step"] == "match" and "too close to call" in face["fallback"]["reason"]
    assert face["fallback"]["reason"].endswith("< 5.000 for a face of degradation "
                                               f"{face['degradation']:.2f}; restored blind")

    soft = Album(root, embedder=embedder, crop_size=64, cache_dir=False,
                 rule=MatchRule(threshold=0.9, degraded_threshold=0.9, margin=0.0, degraded_margin=0.0,
                                soft_margin=10.0, min_strength_scale=0.5))
    _, report = FaceRestorer(model, album=soft, k=2, strength=0.8).enhance(photo)
    face = report[0]
    assert face["restored"] == "references" and face["person"] == "ann"
    assert face["strength"] == pytest.approx(0.8 * (0.5 + 0.5 * face["margin"] / 10.0), abs=1e-3)
    assert any("small margin" in w and "instead of 0.80" in w for w in face["warnings"])


def test_only_person_is_matched_alone(model, tinted, monkeypatch):
    root, photo = tinted
    monkeypatch.setattr(restorer_module, "align_photo",
                        lambda image, *a, **k: [_stub_face(image, (60, 40, 124, 104), 2.0)])
    album = Album(root, embedder=MeanColourEmbedder(), crop_size=64, cache_dir=False,
                  rule=MatchRule(threshold=0.9, degraded_threshold=0.9, margin=5.0, degraded_margin=5.0))
    _, report = FaceRestorer(model, album=album, k=2, only_person="ann").enhance(photo)
    assert report[0]["person"] == "ann" and report[0]["second"] is None and report[0]["restored"] == "references"
    _, report = FaceRestorer(model, album=album, k=2, only_person="bob").enhance(photo)
    assert report[0]["person"] is None and report[0]["restored"] == "blind"  # bob alone is still not this face
    with pytest.raises(ValueError, match="not a person of the album"):
        FaceRestorer(model, album=album, only_person="cy")


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
