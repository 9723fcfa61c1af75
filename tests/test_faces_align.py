"""Detection, FFHQ alignment and paste-back on the real obama photos (skip without ../shared/realfaces)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from instantrestore.cli import main
from instantrestore.faces import (FFHQ_TEMPLATE_5_512, align_face, aligned_landmarks, detect_faces, paste_face,
                                  soft_mask, template_points)
from instantrestore.utils.images import load_image


@pytest.fixture(scope="module")
def obama(realfaces_dir):
    photos = sorted((realfaces_dir / "obama" / "raw_photos").iterdir())
    assert len(photos) == 9, [p.name for p in photos]
    out = []
    for path in photos:
        image = np.asarray(load_image(path))
        faces = detect_faces(image)
        out.append((path.name, image, faces))
    return out


def test_every_raw_photo_gives_one_face(obama):
    counts = {name: len(faces) for name, _, faces in obama}
    assert all(n == 1 for n in counts.values()), counts


def test_aligned_crops_land_on_ffhq_template(obama):
    errors = {}
    for name, image, faces in obama:
        aligned = align_face(image, faces[0], 512)
        assert aligned.crop.shape == (512, 512, 3) and aligned.crop.dtype == np.uint8
        # landmarks re-detected in the crop itself, not just the transformed photo landmarks
        found = template_points(aligned_landmarks(aligned.crop))
        errors[name] = float(np.linalg.norm(found - FFHQ_TEMPLATE_5_512, axis=1).mean())
    # measured: 7-25 px per photo (the larger ones are turned heads), 12 px on average
    assert max(errors.values()) < 35, errors
    assert np.mean(list(errors.values())) < 16, errors


def test_align_then_paste_unchanged_crop_reproduces_photo(obama):
    psnrs = {}
    for name, image, faces in obama:
        aligned = align_face(image, faces[0], 512)
        pasted = paste_face(image, aligned.crop, aligned.matrix)
        assert pasted.shape == image.shape
        inside = soft_mask(aligned.matrix, 512, image.shape[:2]) > 0.99
        assert inside.sum() > 0.5 * faces[0].size ** 2
        mse = ((pasted.astype(np.float64) - image) ** 2)[inside].mean()
        psnrs[name] = 10 * np.log10(255 ** 2 / mse)
        outside = soft_mask(aligned.matrix, 512, image.shape[:2]) == 0
        assert np.array_equal(pasted[outside], image[outside])
    # measured: 32.9-51.6 dB (lowest for o7: its 643 px face is shrunk to 512 and back, and it touches
    # the photo edge, where the crop's padding treatment blurs a 3% band)
    assert min(psnrs.values()) > 30, psnrs
    assert np.mean(list(psnrs.values())) > 38, psnrs


def test_paste_of_a_changed_crop_changes_only_the_face(obama):
    name, image, faces = obama[0]
    aligned = align_face(image, faces[0], 512)
    grey = np.full_like(aligned.crop, 128)
    pasted = paste_face(image, grey, aligned.matrix)
    x0, y0, x1, y1 = (int(v) for v in faces[0].box)
    centre = pasted[(y0 + y1) // 2, (x0 + x1) // 2]
    assert np.abs(centre.astype(int) - 128).max() <= 1
    assert np.array_equal(pasted[:5, :5], image[:5, :5])


def test_exif_orientation_is_honoured(realfaces_dir, tmp_path):
    photo = Image.open(realfaces_dir / "obama" / "raw_photos" / "o2.jpg").convert("RGB")
    photo = photo.resize((photo.width // 2, photo.height // 2))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    photo.rotate(90, expand=True).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    image = np.asarray(load_image(tmp_path / "rotated.jpg"))
    assert image.shape[:2] == (photo.height, photo.width)
    assert len(detect_faces(image)) == 1


def test_photo_without_face_gives_empty_list():
    rng = np.random.default_rng(0)
    blank = (rng.random((240, 320, 3)) * 40 + 100).astype(np.uint8)
    assert detect_faces(blank, fallback="none") == []


def test_align_cli_writes_crops_and_json_and_reports_no_face(realfaces_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    photo = Image.open(realfaces_dir / "obama" / "raw_photos" / "o8.png").convert("RGB")
    photo.resize((photo.width // 2, photo.height // 2)).save(src / "person.jpg", quality=95)
    Image.new("RGB", (200, 150), (90, 120, 150)).save(src / "empty.png")
    Image.new("RGB", (200, 150), (90, 120, 150)).save(src / "empty.jpg")  # same stem: outputs must not collide
    out = tmp_path / "out"
    assert main(["align", str(src), str(out), "--size", "256", "--fallback", "none", "--min-face", "200"]) == 0
    record = json.loads((out / "person.json").read_text())
    assert record["status"] == "ok" and len(record["faces"]) == 1
    face = record["faces"][0]
    assert face["crop"] == "person_00.png" and face["tiny"] is True  # about 117 px < --min-face 200
    assert np.array(face["landmarks68"]).shape == (68, 2)
    matrix, inverse = np.array(face["matrix"]), np.array(face["inverse_matrix"])
    assert np.allclose((np.vstack([matrix, [0, 0, 1]]) @ np.vstack([inverse, [0, 0, 1]]))[:2], np.eye(3)[:2], atol=1e-6)
    assert Image.open(out / "person_00.png").size == (256, 256)
    assert json.loads((out / "empty_png.json").read_text())["status"] == "no_face"
    assert json.loads((out / "empty_jpg.json").read_text())["photo"].endswith("empty.jpg")
    err = capsys.readouterr().err
    assert "empty.png" in err and "tiny" in err
    assert main(["align", str(src), str(src)]) == 2  # refuses to write into the input folder


def test_dense_landmarks_without_mediapipe_say_how_to_install():
    import importlib.util
    if importlib.util.find_spec("mediapipe") is not None:
        pytest.skip("mediapipe is installed; the error path cannot be reached")
    from instantrestore.faces import dense_landmarks
    with pytest.raises(ImportError, match=r"instantrestore\[dense\]"):
        dense_landmarks(np.zeros((64, 64, 3), np.uint8))


def test_dense_landmarks_478_points(realfaces_dir):
    pytest.importorskip("mediapipe", reason="mediapipe (the 'dense' extra) is not installed")
    from instantrestore.faces import dense_landmarks
    crop = np.asarray(load_image(realfaces_dir / "obama" / "aligned_references" / "o1.png"))
    points = dense_landmarks(crop)
    assert len(points) == 1 and points[0].shape == (478, 2)
    assert dense_landmarks(np.zeros((64, 64, 3), np.uint8)) == []


def test_paste_mask_is_feathered(obama):
    _, image, faces = obama[1]
    aligned = align_face(image, faces[0], 512)
    mask = soft_mask(aligned.matrix, 512, image.shape[:2])
    assert mask.max() == pytest.approx(1.0) and mask.min() == 0.0
    # the seam fades over a band of about 5% of the (crop footprint) side on each edge, not a hard step
    side = np.sqrt((mask > 0).sum())
    row = mask[int(np.argmax(mask.sum(1)))]
    band = ((row > 0.02) & (row < 0.98)).sum() / 2
    assert 0.02 * side < band < 0.1 * side, (band, side)


def test_many_faces_in_one_photo_are_aligned_and_pasted(realfaces_dir):
    raw = realfaces_dir / "obama" / "raw_photos"
    left = Image.open(raw / "o8.png").convert("RGB").resize((600, 338))
    right = Image.open(raw / "o2.jpg").convert("RGB").resize((470, 640))
    group = Image.new("RGB", (1070, 640), (60, 60, 60))
    group.paste(left, (0, 150))
    group.paste(right, (600, 0))
    photo = np.asarray(group)
    faces = detect_faces(photo)
    assert len(faces) == 2 and faces[0].size >= faces[1].size
    centres = sorted((f.box[0] + f.box[2]) / 2 for f in faces)
    assert centres[0] < 600 < centres[1]
    from instantrestore.faces import align_faces, paste_faces
    aligned = align_faces(photo, faces, 256)
    greys = [np.full_like(aligned[0].crop, 0), np.full_like(aligned[1].crop, 255)]
    pasted = paste_faces(photo, greys, [a.matrix for a in aligned])
    for face, value in zip(faces, (0, 255)):
        x0, y0, x1, y1 = face.box
        assert pasted[int((y0 + y1) / 2), int((x0 + x1) / 2)].tolist() == [value] * 3


def test_cnn_fallback_finds_a_tilted_face_hog_misses(realfaces_dir):
    photo = Image.open(realfaces_dir / "obama" / "raw_photos" / "o9.jpg").convert("RGB")
    photo.thumbnail((360, 360))
    tilted = np.asarray(photo.rotate(40, resample=Image.BICUBIC, expand=True))
    assert detect_faces(tilted, fallback="none") == []
    faces = detect_faces(tilted, fallback="cnn")
    assert len(faces) == 1 and faces[0].detector == "cnn"
    x0, y0, x1, y1 = faces[0].box
    eyes = template_points(faces[0].landmarks68)[:2]
    assert ((eyes >= [x0, y0]) & (eyes <= [x1, y1])).all()


def test_paste_cli_puts_restored_crops_back(realfaces_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    photo = Image.open(realfaces_dir / "obama" / "raw_photos" / "o8.png").convert("RGB")
    photo.resize((photo.width // 2, photo.height // 2)).save(src / "person.png")
    aligned, restored, out = tmp_path / "aligned", tmp_path / "restored", tmp_path / "out"
    assert main(["align", str(src), str(aligned), "--size", "256"]) == 0
    restored.mkdir()
    Image.new("RGB", (512, 512), (255, 0, 0)).save(restored / "person_00.png")  # a "restorer" at 2x the size
    assert main(["paste", str(aligned), str(restored), str(out)]) == 0
    original, result = np.asarray(load_image(src / "person.png")), np.asarray(load_image(out / "person.png"))
    assert result.shape == original.shape
    face = json.loads((aligned / "person.json").read_text())["faces"][0]
    x0, y0, x1, y1 = face["box"]
    assert result[int((y0 + y1) / 2), int((x0 + x1) / 2)].tolist() == [255, 0, 0]
    assert np.array_equal(result[:3, :3], original[:3, :3])
    (restored / "person_00.png").unlink()
    assert main(["paste", str(aligned), str(restored), str(out), "--overwrite"]) == 0  # paste skips done photos
    assert "person_00.png" in capsys.readouterr().err
    assert np.array_equal(np.asarray(load_image(out / "person.png")), original)
