"""The files `restore` writes for whole photos (pipeline/photo_files.py): format (--ext, --out x.jpg),
names (--suffix), EXIF and colour profile, --save-faces, --draw-box; and which faces (--largest-face),
where the album's caches go (--cache-dir), the default model, --version.

Random micro weights, with face detection and identity stubbed as in test_restore_photos.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageCms

import instantrestore.pipeline.face_restorer as restorer_module
from cli_helpers import run_cli
from instantrestore.pipeline.photo_files import draw_boxes
from instantrestore.utils.images import load_image
from test_restore_photos import BOX, BOX2, TINTS, _digests, _model, _stub_align_pairs, _tinted, job, stubs  # noqa: F401


def _restore(capsys, job, micro_weights, *flags, out=None):
    """restore on the job's photos; at --upscale 1 unless told (these tests are about the files, not the size)."""
    size = () if "--upscale" in flags else ("--upscale", "1")
    return run_cli(capsys, "restore", job / "photos", "--album", job / "album", "--out", out or job / "out",
                   *_model(micro_weights), *size, *flags)


def _pixels(path) -> np.ndarray:
    return np.asarray(load_image(path)).astype(int)


def test_ext_auto_follows_the_input_png_keeps_every_pixel_jpg_is_high_quality(job, stubs, micro_weights, capsys):
    out = job / "out"
    rc, _, err = _restore(capsys, job, micro_weights)
    assert rc == 0, err
    assert {p.name for p in out.glob("*.*g")} == {"ann.png", "bob.png", "stranger.png", "wall.jpg"}
    assert Image.open(out / "wall.jpg").format == "JPEG" and Image.open(out / "ann.png").format == "PNG"

    rc, _, err = _restore(capsys, job, micro_weights, "--ext", "png", out=job / "png")
    assert rc == 0, err
    assert np.array_equal(_pixels(job / "png" / "wall.png"), _pixels(job / "photos" / "wall.jpg"))  # no face: as is

    rc, _, err = _restore(capsys, job, micro_weights, "--ext", "jpg", out=job / "jpg")
    assert rc == 0, err
    jpeg = Image.open(job / "jpg" / "ann.jpg")
    from PIL import JpegImagePlugin
    assert JpegImagePlugin.get_sampling(jpeg) == 0  # 4:4:4, no colour subsampling
    assert max(jpeg.quantization[0][:4]) <= 3  # quality 95's table (75's starts at 8)
    assert np.abs(_pixels(job / "jpg" / "ann.jpg") - _pixels(job / "png" / "ann.png")).mean() < 5  # noise: the worst case
    assert json.loads((job / "jpg" / "ann.json").read_text())["output"] == "ann.jpg"


def test_out_file_may_be_jpeg_and_disagreeing_or_unrecordable_names_are_refused(job, stubs, micro_weights, capsys):
    photo = job / "photos" / "ann.png"
    rc, _, err = run_cli(capsys, "restore", photo, "--out", job / "r.jpg", *_model(micro_weights))
    assert rc == 0, err
    assert Image.open(job / "r.jpg").format == "JPEG" and (job / "r.json").is_file()
    for out, flags, needle in ((job / "r.tif", (), "use --out"), (job / "s.png", ("--ext", "jpg"), "s.jpg"),
                               (job / "t.png", ("--suffix", "v2"), "give --out a folder")):
        rc, _, err = run_cli(capsys, "restore", photo, "--out", out, *_model(micro_weights), *flags)
        assert rc == 2 and needle in err and not out.exists(), err
    rc, _, err = run_cli(capsys, "restore", photo, "--out", job / "o", "--suffix", "a/b", *_model(micro_weights))
    assert rc == 2 and "no slashes" in err, err


def test_suffix_names_every_output_and_resumes(job, stubs, micro_weights, capsys):
    out = job / "out"
    assert _restore(capsys, job, micro_weights, "--suffix", "v2", "--before-after")[0] == 0
    assert {p.name for p in out.iterdir() if p.name.startswith("ann")} == {
        "ann_v2.png", "ann_v2.json", "ann_v2_before_after.jpg"}
    rc, _, err = _restore(capsys, job, micro_weights, "--suffix", "v2", "--before-after")
    assert rc == 0 and "skipping 4 existing" in err, err


def _exif_photo(path) -> None:
    """A JPEG taken on its side (orientation 6: turn 90 degrees clockwise) with camera tags and an sRGB profile."""
    photo = np.random.default_rng(3).integers(0, 256, (200, 160, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "Acme camera"
    exif.get_ifd(0x8769)[0x9003] = "2020:01:02 03:04:05"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo).save(path, exif=exif.tobytes(), icc_profile=icc, quality=95)


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_exif_and_colour_profile_are_carried_over_with_the_orientation_reset(ext, job, stubs, micro_weights, capsys):
    photo = job / "side.jpg"
    _exif_photo(photo)
    out = job / f"r.{ext}"
    rc, _, err = run_cli(capsys, "restore", photo, "--out", out, *_model(micro_weights))
    assert rc == 0, err
    source, result = Image.open(photo), Image.open(out)
    assert result.size == (400, 320)  # upright (load_image turned it), enlarged 2x (--upscale default)
    exif = result.getexif()
    assert exif[0x0112] == 1 and exif[0x010F] == "Acme camera"  # a viewer must not turn it again
    assert exif.get_ifd(0x8769)[0x9003] == "2020:01:02 03:04:05"
    assert result.info["icc_profile"] == source.info["icc_profile"]


def test_save_faces_writes_each_faces_crops_listed_in_the_report_and_resumes(job, stubs, micro_weights, capsys):
    out = job / "out"
    rc, _, err = _restore(capsys, job, micro_weights, "--save-faces")
    assert rc == 0, err
    for who in ("ann", "bob", "stranger"):
        report = json.loads((out / f"{who}.json").read_text())
        assert report["face_files"] == [f"cropped_faces/{who}_00.png", f"restored_faces/{who}_00.png"]
        crop = np.asarray(Image.open(out / "cropped_faces" / f"{who}_00.png"))
        assert crop.shape == (report["faces"][0]["crop_size"],) * 2 + (3,)
        assert Image.open(out / "restored_faces" / f"{who}_00.png").size == (report["faces"][0]["restored_size"],) * 2
    assert json.loads((out / "wall.json").read_text())["face_files"] == []
    assert sorted(p.name for p in (out / "cropped_faces").iterdir()) == ["ann_00.png", "bob_00.png", "stranger_00.png"]

    made = _digests(out / "restored_faces")
    rc, _, err = _restore(capsys, job, micro_weights, "--save-faces")
    assert rc == 0 and "skipping 4 existing" in err and _digests(out / "restored_faces") == made
    (out / "restored_faces" / "bob_00.png").unlink()  # a crop gone: that photo is made again
    rc, _, err = _restore(capsys, job, micro_weights, "--save-faces")
    assert rc == 0 and "skipping 3 existing" in err and _digests(out / "restored_faces") == made

    fresh = job / "fresh"  # a run without --save-faces, then with it: the crops are added
    assert _restore(capsys, job, micro_weights, out=fresh)[0] == 0
    rc, _, err = _restore(capsys, job, micro_weights, "--save-faces", out=fresh)
    assert rc == 0 and "skipping" not in err and (fresh / "cropped_faces" / "ann_00.png").is_file(), err


def test_save_faces_keeps_a_file_of_the_users_under_a_crops_name(job, stubs, micro_weights, capsys):
    out = job / "out"
    (out / "restored_faces").mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out / "restored_faces" / "ann_01.png")  # ann has one face
    rc, _, err = _restore(capsys, job, micro_weights, "--save-faces")
    assert rc == 0 and "no record of restore making them: ann_01.png" in err and "--overwrite" in err, err
    assert not (out / "ann.png").exists() and (out / "bob.png").exists()
    assert Image.open(out / "restored_faces" / "ann_01.png").size == (8, 8)
    rc, _, err = _restore(capsys, job, micro_weights, "--save-faces", "--overwrite")
    assert rc == 0 and (out / "ann.png").exists(), err
    assert Image.open(out / "restored_faces" / "ann_01.png").size == (8, 8)  # not one of this run's names: left


def test_draw_box_draws_the_faces_boxes_and_is_recorded(job, stubs, micro_weights, capsys):
    out = job / "out"
    assert _restore(capsys, job, micro_weights, "--draw-box")[0] == 0
    x0, y0, x1, y1 = BOX
    boxed = np.asarray(Image.open(out / "ann.png"))
    assert (boxed[y0, x0 + 5:x1 - 5] == (0, 255, 0)).all() and (boxed[y1, x0 + 5:x1 - 5] == (0, 255, 0)).all()
    assert json.loads((out / "ann.json").read_text())["provenance"]["settings"]["draw_box"] is True
    rc, _, err = _restore(capsys, job, micro_weights)  # without it: another job's outputs, kept
    assert rc == 0 and "made with another model, album, settings or input" in err, err
    plain = job / "plain"
    assert _restore(capsys, job, micro_weights, out=plain)[0] == 0
    assert not (np.asarray(Image.open(plain / "ann.png"))[y0, x0 + 5:x1 - 5] == (0, 255, 0)).all()


def test_draw_boxes_scales_them_to_a_larger_result():
    image = np.zeros((200, 400, 3), np.uint8)  # twice the 100 x 200 photo
    drawn = draw_boxes(image, [{"box": [10, 20, 60, 70], "restored": None}], (200, 100))
    assert (drawn[40, 30:110] == (255, 0, 0)).all() and (drawn[140, 30:110] == (255, 0, 0)).all()  # red: kept
    assert not drawn[20, 30:110].any()  # not at the photo's own coordinates


def test_largest_face_restores_it_alone_and_keeps_the_others(job, stubs, micro_weights, monkeypatch, capsys):
    monkeypatch.setattr(restorer_module, "align_photo", _stub_align_pairs)
    pair = np.random.default_rng(7).integers(0, 256, (160, 240, 3), dtype=np.uint8)
    for box, who, seed in ((BOX, "ann", 200), (BOX2, "bob", 201)):
        pair[box[1]:box[3], box[0]:box[2]] = _tinted(seed, TINTS[who])
    for name in ("ann", "bob", "stranger"):
        (job / "photos" / f"{name}.png").unlink()
    Image.fromarray(pair).save(job / "photos" / "pair.png")
    rc, stdout, err = _restore(capsys, job, micro_weights, "--largest-face")
    assert rc == 0, err
    assert "1 with faces restored" in stdout and "1 kept" in stdout and "pair.png#1" not in err  # a choice, no problem
    first, second = json.loads((job / "out" / "pair.json").read_text())["faces"]
    assert first["restored"] == "references" and second["restored"] is None
    assert second["fallback"] == {"step": "largest-face", "reason": "not the largest face; kept as it is"}
    x0, y0, x1, y1 = BOX2
    assert np.array_equal(np.asarray(load_image(job / "out" / "pair.png"))[y0 - 20:y1 + 20, x0 - 10:x1 + 20],
                          pair[y0 - 20:y1 + 20, x0 - 10:x1 + 20])
    assert json.loads((job / "out" / "pair.json").read_text())["provenance"]["settings"]["largest_face"] is True


def test_cache_dir_holds_the_albums_caches(job, stubs, micro_weights, capsys):
    caches = job / "caches"
    rc, _, err = _restore(capsys, job, micro_weights, "--cache-dir", caches)
    assert rc == 0, err
    assert sorted(p.name.split("-")[0] for p in caches.iterdir()) == ["ann", "ann", "bob", "bob"]
    assert not (job / "album" / ".instantrestore-cache").exists()
    rc, _, err = _restore(capsys, job, micro_weights, "--cache-dir", caches, out=job / "again")
    assert rc == 0 and "all references from the cache" in err, err
    rc, _, err = run_cli(capsys, "restore", job / "photos", "--out", job / "o", "--cache-dir", caches,
                         *_model(micro_weights))
    assert rc == 2 and "give --album" in err, err


def test_photo_flags_are_refused_with_aligned_crops(job, capsys):
    for flag in (["--save-faces"], ["--ext", "jpg"], ["--largest-face"], ["--suffix", "x"]):
        rc, _, err = run_cli(capsys, "restore", job / "photos", "--aligned", "--out", job / "o", *flag)
        assert rc == 2 and flag[0] in err and "use one or the other" in err, err


def test_restore_defaults_to_the_shipped_model_as_ui_does_and_says_so_once(job, stubs, capsys):
    rc, _, err = run_cli(capsys, "restore", job / "photos" / "ann.png", "--out", job / "out")
    assert rc == 0, err
    assert err.count("shipped tiny synthetic-world model") == 1 and "mean nothing" in err, err
    report = json.loads((job / "out" / "ann.json").read_text())
    assert report["faces"][0]["restored"] == "blind" and report["faces"][0]["restored_size"] == 128  # its size
    rc, _, err = run_cli(capsys, "info")  # commands with no shipped default still ask for a model
    assert rc == 2 and "no model chosen" in err


def test_version(capsys):
    from instantrestore import FaceRestorer, __version__  # noqa: F401 - the library's entry point

    with pytest.raises(SystemExit) as stop:
        run_cli(capsys, "--version")
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"instantrestore {__version__}"
