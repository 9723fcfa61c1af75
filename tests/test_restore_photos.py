"""restore_photos.py and `instantrestore restore` on whole photos with an album.

Fast tests: random micro weights, with face detection and identity stubbed (a tinted square is a
face, its tint is who it is), so outputs, reports, resume and flag errors are checked in seconds.
Slow tests: the real photos of ../shared/realfaces (dlib), skipped where absent."""
from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import instantrestore.pipeline.album as album_module
import instantrestore.pipeline.face_restorer as restorer_module
import instantrestore.faces.identity as identity_module
from instantrestore.cli import main
from instantrestore.faces.align import AlignedFace
from instantrestore.faces.detect import Face
from instantrestore.faces.mask import face_polygon, inside_polygon
from instantrestore.faces.paste import upscale_points
from instantrestore.pipeline.upsample import ClassicalUpsampler
from instantrestore.utils.images import load_image
from instantrestore.pipeline.restore_photos import Summary, output_paths

BOX = (60, 40, 124, 104)  # where the stub finds the face: a 64 px square
TINTS = {"ann": (100, -100, -100), "bob": (-100, -100, 100), "stranger": (-100, 100, -100)}


class MeanColourEmbedder:
    """Stand-in identity model: the crop's mean colour (no dlib)."""

    name = "mean-colour"
    threshold = 0.9

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(images.float().mean(dim=(2, 3)) + 1.5, dim=-1)


def stub_landmarks(box) -> np.ndarray:
    """68 points of a plausible face in ``box``: the jaw a half ellipse, eyebrows, eyes, the rest at the middle."""
    x0, y0, x1, y1 = box
    w, h, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    lm = np.tile([cx, y0 + 0.6 * h], (68, 1))
    t = np.linspace(np.pi, 0, 17)
    lm[0:17] = np.stack([cx + 0.45 * w * np.cos(t), y0 + 0.35 * h + 0.6 * h * np.sin(t)], 1)
    lm[17:27] = np.stack([np.linspace(cx - 0.35 * w, cx + 0.35 * w, 10), np.full(10, y0 + 0.22 * h)], 1)
    for first, side in ((36, -1), (42, 1)):
        a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        lm[first:first + 6] = np.stack([cx + side * 0.2 * w + 0.07 * w * np.cos(a), y0 + 0.35 * h + 0.03 * h * np.sin(a)], 1)
    return lm


def outside_face(box, shape, upscale: float = 2) -> np.ndarray:
    """Boolean (H, W) of an output: the pixels outside the face outline of the stub face in ``box``."""
    return ~inside_polygon(upscale_points(face_polygon(stub_landmarks(box)), upscale), shape[:2])


def _stub_align(image, size=512, max_side=800, fallback="cnn", largest_only=False):
    """A photo with any variation has one face at BOX (landmarks: ``stub_landmarks``); a uniform one has none."""
    if image.std() == 0:
        return []
    x0, y0, x1, y1 = BOX
    scale = size / (x1 - x0)
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    face = Face(box=tuple(float(v) for v in BOX), landmarks68=stub_landmarks(BOX), landmarks5=np.zeros((5, 2)))
    return [AlignedFace(crop=crop, matrix=matrix, face=face, size=size)]


@pytest.fixture
def stubs(monkeypatch):
    monkeypatch.setattr(restorer_module, "align_photo", _stub_align)
    monkeypatch.setattr(album_module, "align_reference",
                        lambda image, size, *args: (np.asarray(Image.fromarray(image).resize((size, size))), "stub"))
    monkeypatch.setattr(album_module, "aligned_landmarks", lambda crop: np.zeros((68, 2)))
    monkeypatch.setattr(identity_module, "load_embedder", lambda spec: MeanColourEmbedder())


def _tinted(seed: int, tint, shape=(64, 64)) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-40, 41, (*shape, 3))
    return np.clip(128 + np.array(tint) + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def job(tmp_path):
    """album/{ann,bob} (2 references each); photos: ann's face, bob's, a stranger's, no face."""
    for person in ("ann", "bob"):
        (tmp_path / "album" / person).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(_tinted(10 * i + len(person), TINTS[person])).save(tmp_path / "album" / person / f"{i}.png")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, who in enumerate(("ann", "bob", "stranger")):
        photo = np.random.default_rng(i).integers(0, 256, (160, 200, 3), dtype=np.uint8)
        x0, y0, x1, y1 = BOX
        photo[y0:y1, x0:x1] = _tinted(100 + i, TINTS[who])
        Image.fromarray(photo).save(photos / f"{who}.png")
    Image.fromarray(np.full((100, 120, 3), 77, np.uint8)).save(photos / "wall.jpg")
    return tmp_path


def _run(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _model(micro_weights):
    return ["--checkpoint", micro_weights / "model"]


def test_photos_restored_reported_and_untouched_outside_the_faces(job, stubs, micro_weights, capsys):
    out = job / "out"
    rc, stdout, err = _run(capsys, "restore", job / "photos", "--album", job / "album", "--out", out,
                           *_model(micro_weights), "--before-after")
    assert rc == 0, err
    assert ("4 photo(s): 3 with faces restored, 1 with none; 3 face(s) found: 2 restored with references, 1 blind, "
            "0 kept; 1 problem(s)") in stdout
    assert "wall.jpg: no face found" in err and "encoded references of ann, bob" in err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(  # wall.jpg: JPEG out
        f"{n}{s}" for n in ("ann", "bob", "stranger", "wall") for s in ((".jpg" if n == "wall" else ".png"), ".json",
                                                                         "_before_after.jpg"))
    for who in ("ann", "bob", "stranger"):
        report = json.loads((out / f"{who}.json").read_text())
        face, = report["faces"]
        assert face["box"] == list(BOX) and face["closest"] in ("ann", "bob")
        if who == "stranger":
            assert face["person"] is None and face["restored"] == "blind" and face["references"] == []
            assert face["fallback"]["step"] == "match" and "restored blind" in face["fallback"]["reason"]
        else:
            assert face["person"] == who and face["restored"] == "references" and face["fallback"] is None
            assert face["references"] == ["0.png", "1.png"] and face["strength"] == 1.0
            assert face["similarity"] >= MeanColourEmbedder.threshold
        assert report["provenance"]["settings"]["k"] == 4 and report["before_after"] == f"{who}_before_after.jpg"
        photo, restored = (np.asarray(load_image(p)) for p in (job / "photos" / f"{who}.png", out / f"{who}.png"))
        # --upscale 2 (the default): twice the size; outside the face outline exactly the Lanczos background
        assert restored.shape == (2 * photo.shape[0], 2 * photo.shape[1], 3) and report["output_size"] == [400, 320]
        background, outside = ClassicalUpsampler("lanczos")(photo, 2), outside_face(BOX, restored.shape)
        assert np.array_equal(restored[outside], background[outside]) and (restored[~outside] != background[~outside]).any()
        assert face["mask"] == "face" and face["face_side"] == 64.0 and face["pasted_side"] == 128.0
        assert face["enlarged"] == 1.0 and face["paste_scale"] == 2.0  # a 64 px model: pasted at 128 px
        assert report["provenance"]["settings"]["upscale"] == 2 and report["provenance"]["settings"]["face_mask"] == "face"
        assert Image.open(out / f"{who}_before_after.jpg").size == (2 * restored.shape[1], restored.shape[0])
    wall = json.loads((out / "wall.json").read_text())
    assert wall["faces"] == [] and wall["problems"] == ["no face found"]
    wall_in, wall_out = (np.asarray(load_image(p)).astype(int) for p in (job / "photos" / "wall.jpg", out / "wall.jpg"))
    background = ClassicalUpsampler()(wall_in.astype(np.uint8), 2).astype(int)  # no face: the background path alone
    assert wall_out.shape == background.shape and np.abs(wall_out - background).max() <= 3  # re-encoded at quality 95

    # a second run redoes nothing and the album's caches are warm
    made = _digests(out)
    rc, stdout, err = _run(capsys, "restore", job / "photos", "--album", job / "album", "--out", out,
                           *_model(micro_weights), "--before-after")
    assert rc == 0 and "skipping 4 existing" in err and "all references from the cache" in err
    assert "4 photo(s): 3 with faces restored, 1 with none; 3 face(s) found" in stdout and _digests(out) == made


def test_unknown_keep_and_settings_recorded(job, stubs, micro_weights, capsys):
    out = job / "out"
    rc, _, err = _run(capsys, "restore", job / "photos" / "stranger.png", "--album", job / "album", "--out", out,
                      *_model(micro_weights), "--unknown", "keep", "-k", "1")
    assert rc == 0, err
    face, = json.loads((out / "stranger.json").read_text())["faces"]
    assert face["restored"] is None and "kept as it is" in face["fallback"]["reason"] and face["strength"] is None
    # a kept face: the whole photo is the background path's output (Lanczos, twice the size)
    assert np.array_equal(np.asarray(load_image(out / "stranger.png")),
                          ClassicalUpsampler()(np.asarray(load_image(job / "photos" / "stranger.png")), 2))
    # other settings: the existing output is kept with a warning, not replaced
    rc, _, err = _run(capsys, "restore", job / "photos" / "stranger.png", "--album", job / "album", "--out", out,
                      *_model(micro_weights), "-k", "1")
    assert rc == 0 and "made with another model, album, settings or input: stranger.png" in err
    assert json.loads((out / "stranger.json").read_text())["faces"][0]["restored"] is None
    rc, _, err = _run(capsys, "restore", job / "photos" / "stranger.png", "--album", job / "album", "--out", out,
                      *_model(micro_weights), "-k", "1", "--overwrite")
    assert rc == 0 and json.loads((out / "stranger.json").read_text())["faces"][0]["restored"] == "blind"


def test_strength_is_resolved_per_face_recorded_and_zero_is_blind(job, stubs, micro_weights, capsys):
    photo = job / "photos" / "ann.png"
    results = {}
    for strength in ("0", "0.5", "auto"):
        out = job / f"s{strength}.png"
        rc, _, err = _run(capsys, "restore", photo, "--album", job / "album", "--out", out, *_model(micro_weights),
                          "--strength", strength)
        assert rc == 0, err
        face, = json.loads(out.with_suffix(".json").read_text())["faces"]
        assert face["restored"] == "references" and 0.0 <= face["strength"] <= 1.0, face
        results[strength] = (face["strength"], np.asarray(load_image(out)))
    assert results["0"][0] == 0.0 and results["0.5"][0] == 0.5
    assert _run(capsys, "restore", photo, "--out", job / "blind.png", *_model(micro_weights))[0] == 0
    assert np.array_equal(results["0"][1], np.asarray(load_image(job / "blind.png")))  # strength 0 = blind
    assert not np.array_equal(results["0.5"][1], results["0"][1])


def test_enhance_strength_overrides_the_restorers(job, stubs, micro_weights):
    from instantrestore import InstantRestore
    from instantrestore.pipeline.album import Album
    from instantrestore.pipeline.face_restorer import FaceRestorer

    with pytest.warns(UserWarning):
        model = InstantRestore.from_pretrained(micro_weights / "model")
    restorer = FaceRestorer(model, album=Album(job / "album", embedder=MeanColourEmbedder()), strength=0.25)
    photo = job / "photos" / "bob.png"
    _, report = restorer.enhance(photo)
    assert report[0]["strength"] == 0.25
    assert set(report.seconds) == {"detect_align", "background", "embed_match", "encode", "restore", "paste"}  # no select
    assert "seconds" not in report.to_json()  # reports of equal runs stay equal
    assert restorer.enhance(photo, strength=0.75)[1][0]["strength"] == 0.75
    with pytest.raises(ValueError, match="strength"):
        FaceRestorer(model, strength=2)


def test_one_photo_to_a_file_and_without_an_album(job, stubs, micro_weights, capsys):
    out = job / "result.png"
    rc, stdout, err = _run(capsys, "restore", job / "photos" / "ann.png", "--out", out, *_model(micro_weights))
    assert rc == 0 and "no --album: every face is restored blind" in err
    assert out.is_file() and json.loads((job / "result.json").read_text())["faces"][0]["restored"] == "blind"


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(job, stubs, micro_weights, monkeypatch, capsys):
    import instantrestore.pipeline.folder_jobs as folder_jobs

    args = ["--album", job / "album", *_model(micro_weights)]
    assert _run(capsys, "restore", job / "photos", "--out", job / "full", *args)[0] == 0
    real, calls = folder_jobs.save_image, {"n": 0}

    def save(*a, **kw):
        if calls["n"] >= 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(folder_jobs, "save_image", save)
    assert _run(capsys, "restore", job / "photos", "--out", job / "part", *args)[0] == 130
    monkeypatch.setattr(folder_jobs, "save_image", real)
    rc, _, err = _run(capsys, "restore", job / "photos", "--out", job / "part", *args)
    assert rc == 0 and "skipping 2 existing" in err
    assert _digests(job / "part") == _digests(job / "full")


@pytest.mark.parametrize("flags, needle", [
    (["--album", "A", "--refs", "R"], "use one or the other"),
    (["--aligned", "--unknown", "keep"], "use one or the other"),
    (["--refs-cache", "C", "--before-after"], "use one or the other"),
    (["--strength", "1.5"], "strength must be a number in [0, 1] or 'auto' (1: follow the references fully, "
                            "0: blind), got 1.5"),
    (["--strength", "strong"], "strength must be a number in [0, 1] or 'auto'"),
    (["--aligned", "--only-person", "ann"], "use one or the other"),
    (["--only-person", "ann"], "--only-person 'ann' needs an album (--album)"),
    (["--album", "A", "--only-person", "ann", "--unknown", "blind"], "use one or the other"),
    (["--upscale", "9"], "upscale must be a number from 1 to 8 (1: the photo keeps its size)"),
    (["--aligned", "--upscale", "2"], "use one or the other"),
    (["--refs", "R", "--color-fix", "adain"], "use one or the other"),
])
def test_mixed_or_bad_flags_are_refused_with_the_fix(flags, needle, tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.new("RGB", (32, 32)).save(photo)
    try:
        rc, _, err = _run(capsys, "restore", photo, "--out", tmp_path / "o", "--backbone", "tiny", *flags)
    except SystemExit as exc:  # argparse refuses a bad --strength value itself
        rc, err = exc.code, capsys.readouterr().err
    assert rc == 2 and needle in err, err
    assert not (tmp_path / "o").exists()


BOX2 = (150, 40, 214, 104)  # a second face beside BOX, in photos at least 240 px wide


def _stub_align_pairs(image, size=512, *args, **kwargs):
    """As ``_stub_align``, with a second face at BOX2 in a wide photo (both 'cnn': no has_face check)."""
    faces = []
    for box in (BOX, BOX2)[:2 if image.shape[1] >= 240 else 1]:
        aligned, = _stub_align(image[:, box[0] - BOX[0]:], size)
        matrix = aligned.matrix.copy()
        matrix[0, 2] = -box[0] * matrix[0, 0]
        face = Face(box=tuple(float(v) for v in box), landmarks68=stub_landmarks(box), landmarks5=np.zeros((5, 2)),
                    detector="cnn")
        faces.append(AlignedFace(crop=aligned.crop, matrix=matrix, face=face, size=size))
    return faces if image.std() else []


def test_only_person_restores_their_faces_and_keeps_everyone_elses(job, stubs, micro_weights, monkeypatch,
                                                                   capsys):
    monkeypatch.setattr(restorer_module, "align_photo", _stub_align_pairs)
    pair = np.random.default_rng(7).integers(0, 256, (160, 240, 3), dtype=np.uint8)
    for box, who, seed in ((BOX, "ann", 200), (BOX2, "bob", 201)):
        pair[box[1]:box[3], box[0]:box[2]] = _tinted(seed, TINTS[who])
    Image.fromarray(pair).save(job / "photos" / "pair.png")
    out = job / "out"
    rc, stdout, err = _run(capsys, "restore", job / "photos", "--album", job / "album", "--out", out,
                           *_model(micro_weights), "--only-person", "ann", "--upscale", "1")
    assert rc == 0, err
    assert ("5 photo(s): 2 with faces restored, 3 with none; 5 face(s) found: 2 restored with references, 0 blind, "
            "3 kept; 1 problem(s)") in stdout
    for who in ("ann", "bob", "stranger", "pair"):
        report = json.loads((out / f"{who}.json").read_text())
        assert report["provenance"]["settings"]["only_person"] == "ann"
        assert report["provenance"]["settings"]["unknown"] == "keep"
        photo, restored = (np.asarray(load_image(p)) for p in (job / "photos" / f"{who}.png", out / f"{who}.png"))
        changed = np.zeros(photo.shape[:2], bool)
        for face in report["faces"]:
            if face["box"] == list(BOX) and who in ("ann", "pair"):
                assert face["person"] == "ann" and face["restored"] == "references", face
                changed |= ~outside_face(BOX, photo.shape, 1)
            else:
                assert face["person"] is None and face["restored"] is None and face["strength"] is None, face
                assert face["fallback"]["step"] == "match"
                assert face["fallback"]["reason"].startswith("not ann, the one person matched: ")
                assert face["fallback"]["reason"].endswith("; kept as it is")
        assert len(report["faces"]) == (2 if who == "pair" else 1)
        assert np.array_equal(restored[~changed], photo[~changed])  # --upscale 1: everything else byte for byte
        assert (restored[changed] != photo[changed]).any() == (who in ("ann", "pair"))
    # without the flag the outputs are another job's: kept with a warning, not replaced
    made = _digests(out)
    rc, _, err = _run(capsys, "restore", job / "photos", "--album", job / "album", "--out", out,
                      *_model(micro_weights))
    assert rc == 0 and "made with another model, album, settings or input" in err and _digests(out) == made


def test_without_only_person_the_provenance_is_as_before_and_resumes(job, stubs, micro_weights, capsys):
    out = job / "out"
    args = ["restore", job / "photos" / "ann.png", "--album", job / "album", "--out", out, *_model(micro_weights)]
    assert _run(capsys, *args)[0] == 0
    report = json.loads((out / "ann.json").read_text())
    assert report["provenance"]["settings"] == {"k": 4, "unknown": "blind", "strength": 1.0, "strict": False,
                                                "embedder": "mean-colour", "crop_size": 512, "upscale": 2,
                                                "bg_upsampler": "lanczos", "color_fix": "wavelet", "face_mask": "face"}
    made = _digests(out)
    rc, _, err = _run(capsys, *args)
    assert rc == 0 and "skipping 1 existing" in err and _digests(out) == made


def test_only_person_not_in_the_album_is_refused_naming_its_persons(job, stubs, capsys):
    out = job / "out"
    rc, _, err = _run(capsys, "restore", job / "photos", "--album", job / "album", "--out", out,
                      "--backbone", "tiny", "--only-person", "cy")
    assert rc == 2 and "--only-person 'cy' is not a person of the album" in err and "its persons: ann, bob" in err
    assert not out.exists()


def test_out_inside_the_album_or_photos_is_refused(job, capsys):
    for out in (job / "album" / "restored", job / "photos" / "restored"):
        rc, _, err = _run(capsys, "restore", job / "photos", "--album", job / "album", "--out", out,
                          "--backbone", "tiny")
        assert rc == 2 and "input folder" in err and not out.exists()


def test_output_names_tell_clashing_photos_apart(tmp_path):
    photos = [tmp_path / "a" / "x.jpg", tmp_path / "a" / "x.png", tmp_path / "b" / "y.jpg"]
    names = [(o.image.name, o.report.name, o.before_after.name) for o in output_paths(photos, tmp_path / "out")]
    assert names == [("a_x_jpg.jpg", "a_x_jpg.json", "a_x_jpg_before_after.jpg"),
                     ("a_x_png.png", "a_x_png.json", "a_x_png_before_after.jpg"),
                     ("y.jpg", "y.json", "y_before_after.jpg")]
    named = [o.image.name for o in output_paths(photos, tmp_path / "out", ext="png", suffix="v2")]
    assert named == ["a_x_jpg_v2.png", "a_x_png_v2.png", "y_v2.png"]


def test_summary_counts_faces_and_problems():
    summary = Summary()
    summary.add({"photo": "p/a.jpg", "problems": [], "faces": [
        {"index": 0, "restored": "references", "fallback": None},
        {"index": 1, "restored": "blind", "fallback": {"step": "match", "reason": "no one"}},
        {"index": 2, "restored": None, "fallback": {"step": "restore", "reason": "RuntimeError: oom; kept"}}]})
    summary.add({"photo": "p/b.jpg", "problems": ["no face found"], "faces": []})
    assert summary.line() == ("2 photo(s): 1 with faces restored, 1 with none; 3 face(s) found: 1 restored with "
                              "references, 1 blind, 1 kept; 2 problem(s)")
    assert summary.problems == ["a.jpg#2: restore: RuntimeError: oom; kept", "b.jpg: no face found"]


# ------------------------------------------------------------------ real photos (dlib)
@pytest.mark.slow
def test_real_photos_matched_restored_reported_and_the_album_cached(realfaces_dir, tmp_path, capsys):
    """obama's photos: found, matched to obama, restored with his references and pasted; a stranger
    restored blind; a photo with no face reported; the rest of every photo byte-identical. A second
    run encodes nothing; new contents in one person's folder re-encode only that person."""
    import shutil

    album, photos = tmp_path / "album", tmp_path / "photos"
    (album / "obama").mkdir(parents=True)
    (album / "00022").mkdir()
    for name in ("o1.png", "o2.png", "o3.png"):
        shutil.copy(realfaces_dir / "obama" / "aligned_references" / name, album / "obama" / name)
    for ref in sorted((realfaces_dir / "celebref" / "00022" / "references").glob("*.png"))[:3]:
        shutil.copy(ref, album / "00022" / ref.name)
    photos.mkdir()
    for name in ("o6.jpg", "o8.png"):
        (photos / name).symlink_to(realfaces_dir / "obama" / "raw_photos" / name)
    (photos / "stranger.png").symlink_to(realfaces_dir / "celebref" / "00075" / "references" / "0.png")
    Image.fromarray(np.full((90, 120, 3), 60, np.uint8)).save(photos / "wall.png")
    job = ["restore", photos, "--album", album, "--backbone", "tiny", "-k", "2", "--ext", "png",  # PNG: compared exactly
           "--allow-small"]  # 128 px model

    rc, stdout, err = _run(capsys, *job, "--out", tmp_path / "first")
    assert rc == 0, err
    assert ("4 photo(s): 3 with faces restored, 1 with none; 3 face(s) found: 2 restored with references, 1 blind, "
            "0 kept; 1 problem(s)") in stdout
    assert "aligned references of 00022, obama; encoded references of obama" in err
    for name in ("o6", "o8", "stranger"):
        report = json.loads((tmp_path / "first" / f"{name}.json").read_text())
        face, = report["faces"]
        if name == "stranger":
            assert face["person"] is None and face["restored"] == "blind", face
        else:
            assert face["person"] == "obama" and face["restored"] == "references", face
            assert len(face["references"]) == 2 and face["similarity"] >= 0.92
        photo = np.asarray(load_image(photos / report["photo"].rsplit("/", 1)[1]))
        restored = np.asarray(load_image(tmp_path / "first" / f"{name}.png"))
        # twice the size; outside the face outline (from dlib's landmarks) exactly the Lanczos background
        background, outside = ClassicalUpsampler()(photo, 2), ~inside_polygon(np.array(face["outline"]), restored.shape)
        assert restored.shape == background.shape and face["mask"] == "face" and outside.mean() > 0.5
        assert np.array_equal(restored[outside], background[outside]) and (restored[~outside] != background[~outside]).any()
    assert json.loads((tmp_path / "first" / "wall.json").read_text())["problems"] == ["no face found"]

    rc, _, err = _run(capsys, *job, "--out", tmp_path / "second")
    assert rc == 0 and "album: all references from the cache" in err
    assert _digests(tmp_path / "second") == _digests(tmp_path / "first")

    shutil.copy(realfaces_dir / "obama" / "aligned_references" / "o4.png", album / "obama" / "o3.png")
    rc, _, err = _run(capsys, *job, "--out", tmp_path / "third")
    assert rc == 0 and "album: aligned references of obama; encoded references of obama" in err


@pytest.mark.slow
def test_real_photos_only_person(realfaces_dir, tmp_path, capsys):
    """--only-person obama on real photos (dlib): his face restored with his references; a stranger (a face
    of 00075, not in the album), alone or beside him in one photo, is the background path's output."""
    import shutil

    album, photos = tmp_path / "album", tmp_path / "photos"
    for person, refs in (("obama", sorted((realfaces_dir / "obama" / "aligned_references").glob("*.png"))[:3]),
                         ("00022", sorted((realfaces_dir / "celebref" / "00022" / "references").glob("*.png"))[:3])):
        (album / person).mkdir(parents=True)
        for ref in refs:
            shutil.copy(ref, album / person / ref.name)
    photos.mkdir()
    (photos / "o6.jpg").symlink_to(realfaces_dir / "obama" / "raw_photos" / "o6.jpg")
    (photos / "stranger.png").symlink_to(realfaces_dir / "celebref" / "00075" / "references" / "0.png")
    obama, stranger = (np.asarray(load_image(photos / n)) for n in ("o6.jpg", "stranger.png"))
    height = max(obama.shape[0], stranger.shape[0])
    pair = np.concatenate([np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0)), mode="edge")
                           for im in (obama, stranger)], axis=1)
    Image.fromarray(pair).save(photos / "pair.png")  # obama and the stranger in one photo
    rc, stdout, err = _run(capsys, "restore", photos, "--album", album, "--backbone", "tiny", "-k", "2",
                           "--only-person", "obama", "--out", tmp_path / "out", "--allow-small")
    assert rc == 0, err
    assert "3 photo(s): 2 with faces restored, 1 with none; 4 face(s) found: 2 restored with references, 0 blind, " \
           "2 kept" in stdout
    faces = json.loads((tmp_path / "out" / "pair.json").read_text())["faces"]
    restored, background = np.asarray(load_image(tmp_path / "out" / "pair.png")), ClassicalUpsampler()(pair, 2)
    ours, = [f for f in faces if f["person"] == "obama"]
    other, = [f for f in faces if f["person"] is None]
    assert ours["restored"] == "references" and other["restored"] is None and other["box"][0] > obama.shape[1]
    # the stranger's face, and everything else outside obama's outline, is the background path's output
    outside = ~inside_polygon(np.array(ours["outline"]), restored.shape)
    assert np.array_equal(restored[outside], background[outside]) and (restored[~outside] != background[~outside]).any()
    face, = json.loads((tmp_path / "out" / "o6.json").read_text())["faces"]
    assert face["person"] == "obama" and face["restored"] == "references", face
    face, = json.loads((tmp_path / "out" / "stranger.json").read_text())["faces"]
    assert face["restored"] is None and face["fallback"]["reason"].startswith("not obama, the one person matched")
    assert np.array_equal(np.asarray(load_image(tmp_path / "out" / "stranger.png")), ClassicalUpsampler()(stranger, 2))
