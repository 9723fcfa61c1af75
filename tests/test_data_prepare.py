"""`prepare-data` (data/prepare.py, prepare_checks.py, prepare_faces.py, manifest.py) on copies of
the real CelebRef-HQ and obama photos: every check, side files, the manifest, resume, the CLI."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instantrestore.cli import main
from instantrestore.data import prepare
from instantrestore.data.datasets import IdentityFolderDataset
from instantrestore.data.landmark_files import landmarks_path, read_landmarks, read_side_file, write_landmarks
from instantrestore.data.manifest import excluded_images, read_manifest
from instantrestore.data.prepare import PrepareSettings, prepare_dataset
from instantrestore.data.prepare_checks import difference_hash, find_duplicates, hash_distance
from instantrestore.faces.align import FFHQ_TEMPLATE_5_512, template_points

PEOPLE, PER_PERSON = 3, 3


def _fingerprints(root: Path) -> dict[str, str]:
    """SHA-256 of every file but the ones prepare-data may write (side files, the manifest)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".json"}


def _copy_people(realfaces_dir: Path, root: Path) -> list[Path]:
    """PEOPLE CelebRef-HQ people x PER_PERSON photos in their own layout; returns the photos."""
    copied = []
    for person in sorted((realfaces_dir / "celebref").iterdir())[:PEOPLE]:
        for path in sorted((person / "references").glob("*.png"))[:PER_PERSON]:
            dest = root / person.name / "references" / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            copied.append(Path(shutil.copy(path, dest)))
    return copied


@pytest.fixture()
def messy(realfaces_dir, tmp_path) -> tuple[Path, list[Path]]:
    """Real people plus one image failing each check."""
    root = tmp_path / "data"
    good = _copy_people(realfaces_dir, root)
    people = sorted(p for p in root.iterdir())
    face = Image.open(good[0]).convert("RGB")
    refs = [p / "references" for p in people]
    (refs[0] / "broken.png").write_bytes(b"not a png")
    face.resize((128, 128)).save(refs[0] / "small.png")
    face.crop((0, 0, 512, 400)).save(refs[1] / "wide.png")
    Image.new("RGB", (512, 512), (120, 120, 120)).save(refs[1] / "flat.png")
    pair = Image.new("RGB", (512, 512), (120, 120, 120))
    pair.paste(face.resize((256, 256)), (0, 128))
    pair.paste(Image.open(good[PER_PERSON]).convert("RGB").resize((256, 256)), (256, 128))
    pair.save(refs[2] / "two.png")
    shutil.copy(good[0], refs[2] / "zz_copy.png")                                # another person's photo
    buf = io.BytesIO()
    Image.open(good[PER_PERSON]).convert("RGB").save(buf, "JPEG", quality=85)     # re-encoded, same person
    (refs[1] / "zz_again.jpg").write_bytes(buf.getvalue())
    return root, good


def test_checks_side_files_manifest_and_the_dataset(messy):
    root, good = messy
    before = _fingerprints(root)
    report = prepare_dataset(root, progress=False)
    assert _fingerprints(root) == before  # the images are never touched
    assert report.images == len(good) + 7 and report.people == PEOPLE
    assert report.counts() == {"unreadable": 1, "too small": 1, "not square": 1, "no face": 1, "several faces": 1,
                               "same photo as another person's": 2, "duplicate": 1}
    first, people = good[0].relative_to(root).as_posix(), sorted(p.name for p in root.iterdir() if p.is_dir())
    assert report.excluded[f"{people[2]}/references/zz_copy.png"].endswith(first)
    assert report.excluded[f"{people[1]}/references/zz_again.jpg"].startswith("duplicate: of ")
    for path in good:
        points, width, height = read_landmarks(landmarks_path(path))
        assert points.shape == (68, 2) and (width, height) == (512, 512)
        assert np.isfinite(points).all() and (points > 0).all() and (points < 512).all()
    for name in ("broken", "small", "wide", "flat", "two"):
        assert not any(root.rglob(f"{name}.json")), name
    manifest = read_manifest(root)
    assert manifest["complete"] and manifest["excluded"] == dict(sorted(report.excluded.items()))
    assert set(manifest["images"]) == {p.relative_to(root).as_posix() for p in root.rglob("*")
                                       if p.is_file() and p.suffix != ".json"}
    # training reads what passed, with landmarks; without the record it reads every readable image
    ds = IdentityFolderDataset(root, size=64)
    used = {p for rec in ds.identities for p in rec.images}
    assert used == set(good) - {good[0]}
    assert all(ds.has_landmarks(p) for p in used)
    assert set(excluded_images(root)) == {root.absolute() / k for k in report.excluded}
    everything = IdentityFolderDataset(root, size=64, prepared=False)
    assert sum(len(r.images) for r in everything.identities) == report.images - 1  # all but the broken file


def test_a_second_run_reads_nothing_and_a_changed_image_is_redone(messy, realfaces_dir, monkeypatch):
    root, good = messy
    first = prepare_dataset(root, progress=False)
    real_measure = prepare._measure
    monkeypatch.setattr(prepare, "_measure", lambda *a: pytest.fail("an unchanged image was read again"))
    again = prepare_dataset(root, progress=False)
    assert again.written == 0 and again.up_to_date == first.written and again.excluded == first.excluded
    flat = next(root.rglob("flat.png"))
    person = realfaces_dir / "celebref" / flat.parent.parent.name / "references"
    shutil.copy(sorted(person.glob("*.png"))[PER_PERSON], flat)   # now another photo of that person
    read = []
    monkeypatch.setattr(prepare, "_measure", lambda item, *a: read.append(item.key) or real_measure(item, *a))
    third = prepare_dataset(root, progress=False)
    assert read == [flat.relative_to(root).as_posix()] and third.written == 1
    assert flat.relative_to(root).as_posix() not in third.excluded
    assert read_side_file(landmarks_path(flat))["prepared"]["sha256"] == hashlib.sha256(flat.read_bytes()).hexdigest()


def test_side_files_it_did_not_write_are_kept_unless_overwrite(realfaces_dir, tmp_path):
    root = tmp_path / "data"
    good = _copy_people(realfaces_dir, root)
    mine = landmarks_path(good[0])
    write_landmarks(mine, np.full((68, 2), 7.0), 512, 512)
    text = mine.read_text()
    report = prepare_dataset(root, progress=False)
    assert report.kept == 1 and mine.read_text() == text
    report = prepare_dataset(root, PrepareSettings(overwrite=True), progress=False)
    assert report.kept == 0 and report.written == len(good) and "prepared" in read_side_file(mine)


def test_dense_landmarks_follow_the_68(realfaces_dir, tmp_path, monkeypatch):
    import instantrestore.faces.detect as detect
    from instantrestore.data import prepare_faces

    root = tmp_path / "data"
    good = _copy_people(realfaces_dir, root)
    monkeypatch.setattr(prepare_faces, "mediapipe_installed", lambda: True)
    monkeypatch.setattr(detect, "dense_landmarks", lambda image, max_faces=1: [np.full((478, 2), 100.0)])
    prepare_dataset(root, PrepareSettings(landmarks="dense"), progress=False)
    points, _, _ = read_landmarks(landmarks_path(good[0]))
    assert points.shape == (68 + 478, 2) and (points[68:] == 100.0).all()
    assert read_side_file(landmarks_path(good[0]))["num_ibug"] == 68
    assert IdentityFolderDataset(root, size=64).num_points == 546


def test_align_writes_a_new_dataset_of_crops(realfaces_dir, tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "aligned"
    for name in ("o1.jpg", "o3.jpg"):
        (photos / "obama").mkdir(parents=True, exist_ok=True)
        shutil.copy(realfaces_dir / "obama" / "raw_photos" / name, photos / "obama" / name)
    before = _fingerprints(photos)
    report = prepare_dataset(photos, PrepareSettings(align_to=str(out), size=256), progress=False)
    assert _fingerprints(photos) == before and not list(photos.rglob("*.json"))
    assert report.root == out and report.written == 2 and not report.excluded
    for name in ("o1", "o3"):
        crop = out / "obama" / f"{name}.png"
        assert Image.open(crop).size == (256, 256)
        points, width, height = read_landmarks(landmarks_path(crop))
        assert (width, height) == (256, 256)
        # the crop puts the eyes where the FFHQ template does
        assert np.abs(template_points(points)[:2] - FFHQ_TEMPLATE_5_512[:2] / 2).max() < 12
    assert prepare_dataset(photos, PrepareSettings(align_to=str(out), size=256), progress=False).up_to_date == 2
    with pytest.raises(ValueError, match="inside"):
        prepare_dataset(photos, PrepareSettings(align_to=str(photos / "aligned")), progress=False)


def test_duplicates_by_hash_distance():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 256).astype(bool)
    near, far = a.copy(), ~a
    near[:5] = ~near[:5]
    as_hex = lambda bits: np.packbits(bits).tobytes().hex()  # noqa: E731
    assert hash_distance(as_hex(a), as_hex(near)) == 5
    items = [("p", "p/1", as_hex(a)), ("p", "p/2", as_hex(near)), ("q", "q/1", as_hex(far))]
    assert find_duplicates(items, 4) == {}
    assert find_duplicates(items, 5) == {"p/2": "duplicate: of p/1"}
    items[1] = ("q", "q/2", as_hex(near))
    assert set(find_duplicates(items, 5)) == {"p/1", "q/2"}
    image = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert len(difference_hash(image)) == 64 and difference_hash(image) == difference_hash(np.asarray(image))


def test_cli_summary_and_user_errors(messy, tmp_path, capsys):
    root, _ = messy
    assert main(["prepare-data", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "left out, no face: 1" in out and "left out, several faces: 1" in out and "prepared.json" in out
    assert main(["prepare-data", str(tmp_path / "missing")]) == 2
    assert main(["prepare-data", str(root), "--align", str(root / "inside")]) == 2
    if not prepare.check_landmark_kind.__globals__["mediapipe_installed"]():
        assert main(["prepare-data", str(root), "--landmarks", "dense"]) == 2
        assert "pip install 'instantrestore[dense]'" in capsys.readouterr().err
    folder = next(root.iterdir()) / "references"
    folder.chmod(0o555)  # read-only for everyone: refused even when the tests run as root
    try:
        assert main(["prepare-data", str(root)]) == 2
    finally:
        folder.chmod(0o755)
    assert "not writable" in capsys.readouterr().err
    empty = tmp_path / "empty"
    (empty / "nobody").mkdir(parents=True)
    assert main(["prepare-data", str(empty)]) == 2
    assert json.loads((root / "prepared.json").read_text())["format"] == 1


def test_a_killed_run_resumes_where_it_stopped(realfaces_dir, tmp_path, monkeypatch, caplog):
    root = tmp_path / "data"
    good = _copy_people(realfaces_dir, root)
    real_one, calls = prepare._prepare_one, []

    def dies_at_the_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_one(*args)

    monkeypatch.setattr(prepare, "FLUSH_SECONDS", -1.0)  # the record is rewritten after every image
    monkeypatch.setattr(prepare, "_prepare_one", dies_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(root, progress=False)
    assert not read_manifest(root)["complete"] and len(read_manifest(root)["images"]) == 3
    excluded_images(root)
    assert "did not finish" in caplog.text
    monkeypatch.setattr(prepare, "_prepare_one", real_one)
    report = prepare_dataset(root, progress=False)
    assert (report.up_to_date, report.written) == (3, len(good) - 3) and read_manifest(root)["complete"]
