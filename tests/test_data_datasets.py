from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from instantrestore.cli import main
from instantrestore.data.datasets import IdentityFolderDataset, SyntheticIdentityDataset
from instantrestore.data.folders import scan_identity_folders
from instantrestore.data.items import sample_references
from instantrestore.data.landmark_files import write_landmarks
from instantrestore.data.synthetic import MAX_MARKS
from instantrestore.data.testset import load_test_case, make_test_set

SIZE = 32


def _solid(path, value: int, size: int = 40) -> None:
    """An image whose colour encodes (identity, image) so a reference can be traced back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size + 8, 3), value, np.uint8)).save(path)


@pytest.fixture()
def layouts(tmp_path):
    """Three identities in the three layouts, one single-image identity, one broken file."""
    root = tmp_path / "data"
    for j in range(5):
        _solid(root / "alice" / f"{j}.png", 10 + j)
    for j in range(3):
        _solid(root / "bob" / "cropped_images" / f"{j}.jpg", 100 + 20 * j)
    _solid(root / "carol" / "gt.png", 200)
    _solid(root / "carol" / "degraded.png", 1)
    for j in range(2):
        _solid(root / "carol" / "conditioning" / f"{j}.png", 220 + 10 * j)
    _solid(root / "dave" / "only.png", 5)
    (root / "alice" / "broken.png").write_bytes(b"not a png")
    return root


def test_scan_reads_all_layouts_skips_single_image_identities_and_reports_bad_files(layouts, caplog):
    with caplog.at_level(logging.WARNING):
        records = scan_identity_folders(layouts)
    names = {r.name: [p.name for p in r.images] for r in records}
    assert names == {"alice": ["0.png", "1.png", "2.png", "3.png", "4.png"], "bob": ["0.jpg", "1.jpg", "2.jpg"],
                     "carol": ["gt.png", "0.png", "1.png"]}
    assert "skipped 1 identity with fewer than 2 usable images" in caplog.text and ": dave" in caplog.text
    assert str(layouts / "alice" / "broken.png") in caplog.text
    with pytest.raises(ValueError, match="no identity folder"):
        scan_identity_folders(layouts / "dave")
    with pytest.raises(FileNotFoundError):
        scan_identity_folders(layouts / "missing")


def test_sample_references_never_returns_the_target_and_k_stays_in_bounds():
    rng = np.random.default_rng(0)
    seen_k = set()
    for _ in range(500):
        n, target = int(rng.integers(2, 9)), None
        target = int(rng.integers(n))
        refs = sample_references(rng, n, target, refs_min=1, refs_max=4)
        assert target not in refs and len(set(refs)) == len(refs)
        assert 1 <= len(refs) <= min(4, n - 1)
        seen_k.add(len(refs))
    assert seen_k == {1, 2, 3, 4}
    ks = {len(sample_references(np.random.default_rng(i), 10, 0, 2, 3)) for i in range(100)}
    assert ks == {2, 3}
    with pytest.raises(ValueError):
        sample_references(rng, 1, 0, 1, 4)


def test_folder_dataset_items(layouts):
    ds = IdentityFolderDataset(layouts, size=SIZE, refs_max=4, preset="sr4", seed=1)
    assert len(ds) == 5 + 3 + 3
    ks = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["lq"].shape == item["hq"].shape == (3, SIZE, SIZE) and item["lq"].dtype == torch.float32
        assert item["refs"].shape == (4, 3, SIZE, SIZE) and item["ref_mask"].dtype == torch.bool
        assert item["hq"].min() >= -1 and item["hq"].max() <= 1
        k = int(item["ref_mask"].sum())
        assert item["ref_mask"][:k].all() and 1 <= k <= 4
        ks.add(k)
        assert torch.all(item["refs"][k:] == 0)
        target = item["hq"][0, 0, 0]
        refs = item["refs"][:k, 0, 0, 0]
        assert not torch.isclose(refs, target, atol=1e-3).any(), "target used as its own reference"
        # references come from the same identity: colours are 10..14, 100..140 or 200..230
        band = lambda v: int((v.item() + 1) * 127.5 + 0.5) // 90  # noqa: E731
        assert all(band(r) == band(target) for r in refs)
        assert item["landmarks_hq"].shape == (0, 2) and item["landmarks_refs"].shape == (4, 0, 2)
        assert item["identity"] in {"alice", "bob", "carol"} and item["index"] == i
    assert len(ks) > 1
    # reproducible per (seed, epoch, index); another epoch draws again
    again = IdentityFolderDataset(layouts, size=SIZE, preset="sr4", seed=1)
    assert torch.equal(ds[3]["lq"], again[3]["lq"]) and torch.equal(ds[3]["ref_mask"], again[3]["ref_mask"])
    again.set_epoch(1)
    assert not torch.equal(ds[3]["lq"], again[3]["lq"])


def test_folder_dataset_landmarks_side_files(tmp_path):
    root = tmp_path / "d"
    for j in range(3):
        _solid(root / "p" / f"{j}.png", 30 * j + 10, size=64)  # 72 x 64: centre crop drops 4 px each side
    write_landmarks(root / "p" / "0.json", np.array([[4.0, 0.0], [67.5, 63.5], [36.0, 32.0]]), 72, 64)
    write_landmarks(root / "p" / "1.json", np.array([[40.0, 40.0], [20.0, 10.0]]), 72, 64)
    ds = IdentityFolderDataset(root, size=SIZE, refs_max=2, refs_min=2, seed=0)
    assert ds.num_points == 3
    item = ds[0]
    lm = item["landmarks_hq"].numpy()
    # (x + 0.5 - crop) * 32 / 64 - 0.5
    np.testing.assert_allclose(lm, [[-0.25, -0.25], [31.5, 31.5], [15.75, 15.75]], atol=1e-5)
    refs = item["landmarks_refs"].numpy()
    assert refs.shape == (2, 3, 2)
    # image 1 has 2 points (third row NaN), image 2 has no side file (all NaN)
    assert any(np.isnan(r[2]).all() and not np.isnan(r[0]).any() for r in refs)
    assert any(np.isnan(r).all() for r in refs)
    with pytest.raises(FileNotFoundError, match="2.png"):
        IdentityFolderDataset(root, size=SIZE, landmarks="require")
    assert IdentityFolderDataset(root, size=SIZE, landmarks="none")[0]["landmarks_hq"].shape == (0, 2)
    fixed = IdentityFolderDataset(root, size=SIZE, num_points=75)[0]
    assert fixed["landmarks_hq"].shape == (75, 2) and torch.isnan(fixed["landmarks_hq"][3:]).all()


def test_synthetic_dataset_items():
    ds = SyntheticIdentityDataset(seed=2, num_identities=3, images_per_identity=4, size=48, refs_max=3, preset="sr8")
    assert len(ds) == 12
    for i in (0, 5, 11):
        item = ds[i]
        assert item["identity"] == f"synth2_{i // 4:05d}" and item["index"] == i
        assert item["landmarks_hq"].shape == (68 + MAX_MARKS, 2)
        assert item["landmarks_refs"].shape == (3, 68 + MAX_MARKS, 2)
        k = int(item["ref_mask"].sum())
        assert 1 <= k <= 3
        assert not torch.isnan(item["landmarks_hq"][:68]).any()
        assert torch.isnan(item["landmarks_refs"][k:]).all()
        for r in range(k):
            assert not torch.equal(item["refs"][r], item["hq"])
        # the degraded target is a real degradation of hq, not a copy
        assert (item["lq"] - item["hq"]).abs().mean() > 0.01
    a, b = ds[7], SyntheticIdentityDataset(2, 3, 4, size=48, refs_max=3)[7]
    assert all(torch.equal(a[key], b[key]) for key in ("lq", "hq", "refs", "ref_mask"))
    with pytest.raises(ValueError):
        SyntheticIdentityDataset(0, 2, 1)


def test_synthetic_oracle_reference_curriculum():
    """oracle_reference = 1: the first reference is the target re-rendered with jitter (close to hq,
    its landmarks near hq's); the other references, lq and hq are exactly those of p = 0."""
    plain = SyntheticIdentityDataset(2, 3, 4, size=48, refs_max=3, style="detail")
    oracle = SyntheticIdentityDataset(2, 3, 4, size=48, refs_max=3, style="detail", oracle_reference=1.0)
    for i in (1, 6):
        a, b = plain[i], oracle[i]
        assert torch.equal(a["hq"], b["hq"]) and torch.equal(a["lq"], b["lq"]) and torch.equal(a["ref_mask"], b["ref_mask"])
        assert torch.equal(a["refs"][1:], b["refs"][1:])
        assert (b["refs"][0] - b["hq"]).abs().mean() < (a["refs"][0] - a["hq"]).abs().mean()
        assert not torch.equal(b["refs"][0], b["hq"])  # a re-render, not a copy
        near = (b["landmarks_refs"][0, :68] - b["landmarks_hq"][:68]).norm(dim=1).median()
        assert near < (a["landmarks_refs"][0, :68] - a["landmarks_hq"][:68]).norm(dim=1).median()
    with pytest.raises(ValueError, match="oracle_reference"):
        SyntheticIdentityDataset(2, 3, 4, oracle_reference=1.5)


def test_make_test_set_is_reproducible_and_resumable(layouts, tmp_path, capsys):
    out_a, out_b = tmp_path / "ta", tmp_path / "tb"
    report = make_test_set(layouts, out_a, preset="sr8", seed=4, refs=4, size=SIZE, progress=False)
    assert (report.written, report.skipped) == (3, 0)
    assert main(["make-testset", str(layouts), "--out", str(out_b), "--seed", "4", "--size", str(SIZE)]) == 0
    for name in ("alice", "bob", "carol"):
        case = load_test_case(out_a / name)
        assert case["gt"].shape == case["degraded"].shape == (SIZE, SIZE, 3)
        assert len(case["refs"]) == {"alice": 4, "bob": 2, "carol": 2}[name]
        assert case["meta"]["params"]["scale"] == 8.0
        assert not any(np.array_equal(r, case["gt"]) for r in case["refs"])
        for f in ("gt.png", "degraded.png", "degradation.json"):
            assert (out_a / name / f).read_bytes() == (out_b / name / f).read_bytes()
    again = make_test_set(layouts, out_a, preset="sr8", seed=4, size=SIZE, progress=False)
    assert (again.written, again.skipped) == (0, 3)
    several = make_test_set(layouts, tmp_path / "tc", seed=4, size=SIZE, targets_per_identity=2, progress=False)
    assert several.written == 6 and (tmp_path / "tc" / "alice__t01" / "gt.png").exists()
    with pytest.raises(ValueError, match="inside the dataset"):
        make_test_set(layouts, layouts / "tests", size=SIZE, progress=False)
    # a test-layout folder reads back as an identity dataset (gt + conditioning)
    ds = IdentityFolderDataset(out_a, size=SIZE)
    assert {r.name for r in ds.identities} == {"alice", "bob", "carol"}


def test_real_celebref_examples_read_as_identities(realfaces_dir, tmp_path):
    root = realfaces_dir / "celebref"
    ds = IdentityFolderDataset(root, size=64, refs_max=4, preset="paper", seed=0)
    assert len(ds.identities) == 8 and all(len(r.images) >= 7 for r in ds.identities)
    assert not any(p.name.startswith("degraded") for r in ds.identities for p in r.images)
    item = ds[0]
    assert item["hq"].shape == (3, 64, 64) and 1 <= int(item["ref_mask"].sum()) <= 4
    report = make_test_set(root, tmp_path / "t", preset="sr8", seed=0, refs=2, size=64, progress=False)
    assert report.written == 8


# ------------------------------------------------------------------ synth / make-testset: resume, files of the user's
def test_png_bytes_are_the_bytes_save_image_writes(tmp_path):
    from instantrestore.utils.images import save_image
    from instantrestore.utils.outputs import png_bytes

    image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    save_image(Image.fromarray(image), tmp_path / "a.png")
    assert png_bytes(image) == (tmp_path / "a.png").read_bytes()  # a normal run's files stay as they were


def test_synth_keeps_an_image_of_the_users_whose_landmarks_are_missing(tmp_path):
    from instantrestore.data.datasets import write_synthetic_identity_folders

    out = tmp_path / "s"
    first = write_synthetic_identity_folders(out, 0, 1, 3, size=SIZE, progress=False)
    assert (first.written, first.skipped, first.foreign) == (3, 0, ())
    folder = out / "synth0_00000"
    made = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "000.json").unlink()  # an image of synth's with its landmarks gone: made again
    (folder / "001.json").unlink()
    _solid(folder / "001.png", 7)  # the user's image in its place, no landmarks: kept
    mine = (folder / "001.png").read_bytes()
    (folder / "002.json").write_text("{}")  # landmarks edited by the user: their image and JSON kept
    again = write_synthetic_identity_folders(out, 0, 1, 3, size=SIZE, progress=False)
    assert (again.written, again.skipped) == (1, 0)
    assert set(again.foreign) == {"synth0_00000/001.png", "synth0_00000/002.json"}
    assert (folder / "000.json").read_bytes() == made["000.json"] and (folder / "001.png").read_bytes() == mine
    assert not (folder / "001.json").exists() and (folder / "002.json").read_text() == "{}"
    other = write_synthetic_identity_folders(out, 0, 1, 1, size=SIZE * 2, progress=False)  # another size
    assert other.written == 0 and other.other == ("synth0_00000/000.png", "synth0_00000/000.json")
    redo = write_synthetic_identity_folders(out, 0, 1, 3, size=SIZE, overwrite=True, progress=False)
    assert redo.written == 3 and {p.name: p.read_bytes() for p in folder.iterdir()} == made


@pytest.mark.parametrize("writer", ["synth", "make-testset"])
def test_a_run_killed_between_its_record_and_its_files_resumes(writer, layouts, tmp_path, monkeypatch):
    import instantrestore.utils.outputs as outputs
    from instantrestore.data.datasets import write_synthetic_identity_folders

    def run(out):
        if writer == "synth":
            return write_synthetic_identity_folders(out, 0, 1, 2, size=SIZE, progress=False)
        return make_test_set(layouts, out, seed=4, refs=2, size=SIZE, progress=False)
    run(tmp_path / "whole")
    real, calls = outputs.atomic_write_bytes, []

    def dies_on_the_third_file(dest, data):
        calls.append(dest)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(dest, data)
    monkeypatch.setattr(outputs, "atomic_write_bytes", dies_on_the_third_file)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut")
    monkeypatch.undo()
    resumed = run(tmp_path / "cut")
    assert resumed.written == {"synth": 1, "make-testset": 3}[writer] and resumed.foreign == resumed.other == ()
    read = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}  # noqa: E731
    assert read(tmp_path / "cut") == read(tmp_path / "whole")


def test_make_test_set_keeps_files_it_did_not_write(layouts, tmp_path):
    out = tmp_path / "t"
    make_test_set(layouts, out, seed=4, refs=2, size=SIZE, progress=False)
    before = (out / "alice" / "gt.png").read_bytes()
    _solid(out / "bob" / "conditioning" / "ref_00.png", 9)  # the user's reference in a case
    (out / "carol" / "degradation.json").unlink()  # an interrupted case: made again
    report = make_test_set(layouts, out, seed=4, refs=2, size=SIZE, progress=False)
    assert (report.written, report.skipped, report.foreign) == (1, 1, ("bob/conditioning/ref_00.png",))
    other = make_test_set(layouts, out, seed=5, refs=2, size=SIZE, progress=False)
    assert other.written == 0 and len(other.other) > 0 and (out / "alice" / "gt.png").read_bytes() == before
    (tmp_path / "u" / "alice").mkdir(parents=True)
    (tmp_path / "u" / "alice" / "gt.png").write_bytes(b"mine")  # no record at all: the user's folder
    assert make_test_set(layouts, tmp_path / "u", seed=4, refs=2, size=SIZE, progress=False).foreign == ("alice/gt.png",)
    assert (tmp_path / "u" / "alice" / "gt.png").read_bytes() == b"mine"
