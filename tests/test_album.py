"""album.py: persons, aligned and embedded references, per-person reference caches on disk.

The cache tests run on random micro weights with face detection and identity stubbed (fast); the
identity tests use the real photos of ../shared/realfaces (slow, skipped where absent)."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import instantrestore.pipeline.album as album_module
from instantrestore import InstantRestore
from instantrestore.generator.fingerprints import reference_key
from instantrestore.pipeline.album import CACHE_DIR, Album
from instantrestore.utils.images import load_image, uint8_to_tensor

SIDE = 64


class MeanColourEmbedder:
    """A stand-in identity model: the mean colour of the crop (no dlib)."""

    name = "mean-colour"
    threshold = 0.9

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(images.float().mean(dim=(2, 3)) + 1.5, dim=-1)


@pytest.fixture(scope="module")
def model(micro_weights):
    with pytest.warns(UserWarning):  # random weights say so
        return InstantRestore.from_pretrained(micro_weights / "model")


@pytest.fixture
def stub_faces(monkeypatch):
    """Every image is its own aligned crop; landmarks at fixed points (no dlib)."""
    monkeypatch.setattr(album_module, "align_reference",
                        lambda image, size, *args: (np.asarray(Image.fromarray(image).resize((size, size))), "stub"))
    monkeypatch.setattr(album_module, "aligned_landmarks", lambda crop: np.zeros((68, 2)))


def _write(path, seed: int, tint=(0, 0, 0)) -> None:
    """Random pixels around a tint: the stub embedder tells tints apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(-40, 41, (SIDE, SIDE, 3))
    Image.fromarray(np.clip(128 + np.array(tint) + noise, 0, 255).astype(np.uint8)).save(path)


def _stub_album(root, **kwargs) -> Album:
    return Album(root, embedder=MeanColourEmbedder(), crop_size=SIDE, **kwargs)


@pytest.fixture
def two_people(tmp_path):
    root = tmp_path / "album"
    for person, seeds, tint in (("ann", (1, 2, 3), (100, -100, -100)), ("bob", (4, 5), (-100, -100, 100))):
        for seed in seeds:
            _write(root / person / f"{seed:02d}.png", seed, tint)
    (root / "empty").mkdir()
    return root


def _cache_files(root, person):
    return sorted(p.name for p in (root / CACHE_DIR).glob(f"{person}-*.safetensors"))


def test_persons_skip_empty_and_hidden_folders(two_people, stub_faces):
    album = _stub_album(two_people)
    assert album.persons == ["ann", "bob"]
    assert [p.name for p in album.files("ann")] == ["01.png", "02.png", "03.png"]
    with pytest.raises(ValueError, match="not a person"):
        album.files("empty")
    album.references("ann")
    assert (two_people / CACHE_DIR).is_dir() and album.persons == ["ann", "bob"]  # the cache is no person


def test_second_run_encodes_nothing_and_a_changed_file_reencodes_only_its_person(two_people, stub_faces, model):
    first = _stub_album(two_people)
    caches = {p: first.reference_cache(p, model) for p in first.persons}
    assert first.encodes == {"ann": 1, "bob": 1} and first.prepared == {"ann": 1, "bob": 1}
    assert len(caches["ann"]) == 3 and len(caches["bob"]) == 2
    first.reference_cache("ann", model)
    assert first.encodes == {"ann": 1, "bob": 1}  # held in memory

    second = _stub_album(two_people)  # a new process over the same album
    again = {p: second.reference_cache(p, model) for p in second.persons}
    assert second.encodes == {} and second.prepared == {}
    for person in caches:
        for layer in caches[person].layers:
            assert torch.equal(again[person].keys[layer], caches[person].keys[layer])
            assert torch.equal(again[person].values[layer], caches[person].values[layer])

    os.utime(two_people / "bob" / "04.png", ns=(1, 1))  # touched, same contents: nothing to redo
    third = _stub_album(two_people)
    for person in third.persons:
        third.reference_cache(person, model)
    assert third.encodes == {} and third.prepared == {}

    old_ann = _cache_files(two_people, "ann")
    _write(two_people / "ann" / "02.png", 99, (100, -100, -100))  # new contents
    fourth = _stub_album(two_people)
    for person in fourth.persons:
        fourth.reference_cache(person, model)
    assert fourth.encodes == {"ann": 1} and fourth.prepared == {"ann": 1}
    new_ann = _cache_files(two_people, "ann")
    assert len(new_ann) == 2 and not set(new_ann) & set(old_ann)  # the old contents' files are removed
    assert len(_cache_files(two_people, "bob")) == 2

    # the same album in the same process sees the folder as it was listed, until refresh()
    _write(two_people / "bob" / "05.png", 98, (-100, -100, 100))
    fourth.reference_cache("bob", model)
    assert fourth.encodes == {"ann": 1}
    fourth.refresh()
    fourth.reference_cache("bob", model)
    assert fourth.encodes == {"ann": 1, "bob": 1}


def test_the_folder_is_listed_and_hashed_once_per_album(two_people, stub_faces, model, monkeypatch):
    """Matching a face asks for every person's references; the folder walk and the file checks
    happen once per Album (and again after refresh), not once per person per face."""
    import instantrestore.pipeline.album_people as people

    album = _stub_album(two_people)
    for person in album.persons:
        album.reference_cache(person, model)
    listings, checks = [], []
    list_images, check = people.list_images, people.AlbumFolder._file_digest
    monkeypatch.setattr(people, "list_images", lambda folder: listings.append(folder.name) or list_images(folder))
    monkeypatch.setattr(people.AlbumFolder, "_file_digest", lambda self, path: checks.append(path.name) or check(self, path))
    embedding = album.references("ann").embeddings[0]
    for _ in range(5):  # five faces
        album.identify(embedding)
        album.reference_cache("ann", model)
        album.key()
    assert listings == [] and checks == []
    album.refresh()
    album.identify(embedding)
    # the persons' listing looks into each folder, then each person's files are listed and checked once
    assert sorted(listings) == ["ann", "ann", "bob", "bob", "empty"]
    assert sorted(checks) == ["01.png", "02.png", "03.png", "04.png", "05.png"]
    assert album.encodes == {"ann": 1, "bob": 1} and album.prepared == {"ann": 1, "bob": 1}


def test_album_key_follows_contents_not_timestamps(two_people):
    key = _stub_album(two_people).key()
    os.utime(two_people / "bob" / "04.png", ns=(1, 1))
    assert _stub_album(two_people).key() == key  # touched, same contents
    _write(two_people / "bob" / "04.png", 77, (-100, -100, 100))
    changed = _stub_album(two_people).key()
    assert changed != key
    _write(two_people / "cat" / "01.png", 3)  # a new person
    assert _stub_album(two_people).key() not in (key, changed)


def test_another_model_encodes_again_without_preparing_again(two_people, stub_faces, model, micro_weights):
    _stub_album(two_people).reference_cache("ann", model)
    with pytest.warns(UserWarning):
        other = InstantRestore.from_pretrained(micro_weights / "model_no_las")
    assert reference_key(other) != reference_key(model)
    album = _stub_album(two_people)
    album.reference_cache("ann", other)
    album.reference_cache("ann", model)
    assert album.encodes == {"ann": 1} and album.prepared == {}
    assert len(_cache_files(two_people, "ann")) == 3  # faces + one cache per model, both kept


def test_damaged_cache_files_are_rebuilt(two_people, stub_faces, model):
    _stub_album(two_people).reference_cache("ann", model)
    for path in (two_people / CACHE_DIR).glob("ann-*.safetensors"):
        path.write_bytes(b"not a safetensors file")
    album = _stub_album(two_people)
    assert len(album.reference_cache("ann", model)) == 3
    assert album.encodes == {"ann": 1} and album.prepared == {"ann": 1}


def test_memory_only_album_writes_nothing(two_people, stub_faces, model):
    album = _stub_album(two_people, cache_dir=False)
    album.reference_cache("bob", model)
    assert album.encodes == {"bob": 1} and not (two_people / CACHE_DIR).exists()


def test_subset_of_a_person_cache_equals_encoding_those_references(two_people, stub_faces, model):
    album = _stub_album(two_people)
    refs = album.references("ann")
    subset = album.reference_cache("ann", model).subset([2, 0])
    direct = model.encode_references([refs.crops[2], refs.crops[0]])
    for layer in direct.layers:
        torch.testing.assert_close(subset.keys[layer], direct.keys[layer], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(subset.values[layer], direct.values[layer], rtol=1e-4, atol=1e-5)
    with pytest.raises(IndexError):
        album.reference_cache("ann", model).subset([3])


def test_identify_takes_the_closest_person_above_the_threshold(two_people, stub_faces):
    album = _stub_album(two_people)
    own = album.references("bob").embeddings[0]
    match = album.identify(own)
    assert match.person == "bob" and match.similarity == pytest.approx(max(match.similarities.values()))
    assert set(match.similarities) == {"ann", "bob"}
    strange = torch.nn.functional.normalize(torch.tensor([0.0, 1.0, 0.0]), dim=0)  # green: no one
    assert album.identify(strange).person is None


def test_unreadable_reference_is_skipped_and_reported(two_people, stub_faces):
    (two_people / "bob" / "broken.png").write_bytes(b"not an image")
    refs = _stub_album(two_people).references("bob")
    assert refs.names == ["04.png", "05.png"] and "broken.png" in refs.skipped
    assert any("broken.png" in line for line in refs.problems())


# ------------------------------------------------------------------ real photos (dlib)
@pytest.fixture(scope="module")
def real_album(realfaces_dir, tmp_path_factory):
    """obama: 4 whole photos (aligned here); two celebref people: 3 aligned crops each; a faceless image."""
    root = tmp_path_factory.mktemp("real") / "album"
    raw = sorted((realfaces_dir / "obama" / "raw_photos").iterdir())
    for path in raw[:4]:
        (root / "obama").mkdir(parents=True, exist_ok=True)
        (root / "obama" / path.name).symlink_to(path)
    for person in ("00022", "00075"):
        refs = sorted((realfaces_dir / "celebref" / person / "references").glob("*.png"), key=lambda p: int(p.stem))
        (root / person).mkdir()
        for path in refs[:3]:
            (root / person / path.name).symlink_to(path)
    Image.fromarray(np.full((256, 256, 3), 200, np.uint8)).save(root / "obama" / "zz_blank.png")
    return root


@pytest.mark.slow
def test_real_album_aligns_photos_uses_crops_and_matches_people(real_album, realfaces_dir):
    album = Album(real_album, fallback="none")
    assert album.persons == ["00022", "00075", "obama"]
    obama = album.references("obama")
    assert obama.names == ["o1.jpg", "o2.jpg", "o3.jpg", "o4.jpg"]
    assert all(note.startswith("aligned from a") for note in obama.notes.values())
    assert obama.skipped == {"zz_blank.png": "no face found"}
    assert obama.crops.shape == (4, 512, 512, 3) and obama.landmarks.shape == (4, 68, 2)
    celeb = album.references("00022")
    assert set(celeb.notes.values()) == {"aligned crop, used as it is"}
    original = np.asarray(load_image(real_album / "00022" / celeb.names[0]))
    assert np.array_equal(celeb.crops[0], original)
    assert all(album.references(p).verification.ok for p in ("00022", "00075", "obama"))

    # held-out photos of each person: their aligned crops match the right person
    probes = {"obama": realfaces_dir / "obama" / "aligned_references" / "o9.png"}
    for person in ("00022", "00075"):
        probes[person] = next((realfaces_dir / "celebref" / person).glob("degraded_*.png"))
    for person, path in probes.items():
        match = album.identify(album.embedder.embed(uint8_to_tensor(np.asarray(load_image(path))))[0])
        assert match.person == person, (path.name, match)
    other = realfaces_dir / "celebref" / "00005" / "references" / "0.png"  # not in the album
    match = album.identify(album.embedder.embed(uint8_to_tensor(np.asarray(load_image(other))))[0])
    assert match.person is None and match.similarity < album.threshold


# ------------------------------------------------------------------ caches checked, photos and people told apart
def _rewrite(path, change) -> None:
    """Rewrite a safetensors file with ``change(tensors)`` applied and its metadata as it was (an
    edited or bit-rotted cache that still reads)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=meta)


def test_altered_faces_cache_is_detected_and_prepared_again(two_people, stub_faces):
    from instantrestore.pipeline.album_caches import AlbumCacheWarning

    original = _stub_album(two_people).references("ann")
    (faces,) = (two_people / CACHE_DIR).glob("ann-*.faces.safetensors")
    _rewrite(faces, lambda t: t["embeddings"].mul_(-1))  # would change who a face matches
    album = _stub_album(two_people)
    with pytest.warns(AlbumCacheWarning, match="altered or damaged"):
        refs = album.references("ann")
    assert album.prepared == {"ann": 1} and torch.equal(refs.embeddings, original.embeddings)
    assert _stub_album(two_people).references("ann") is not None  # rebuilt: the next album reads it quietly


def test_altered_reference_cache_is_detected_and_encoded_again(two_people, stub_faces, model):
    from instantrestore.pipeline.album_caches import AlbumCacheWarning

    original = _stub_album(two_people).reference_cache("ann", model)
    (cache,) = [p for p in (two_people / CACHE_DIR).glob("ann-*.safetensors") if ".faces." not in p.name]
    layer = original.layers[0]
    _rewrite(cache, lambda t: t[f"{layer}.value"].add_(0.5))  # would change the restored pixels
    album = _stub_album(two_people)
    with pytest.warns(AlbumCacheWarning, match="altered or damaged"):
        again = album.reference_cache("ann", model)
    assert album.encodes == {"ann": 1} and torch.equal(again.values[layer], original.values[layer])


def test_a_cache_written_without_a_checksum_is_rebuilt(two_people, stub_faces, model):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    _stub_album(two_people).reference_cache("ann", model)
    for path in (two_people / CACHE_DIR).glob("ann-*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            meta = {k: v for k, v in handle.metadata().items() if k != "tensors_sha256"}
        save_file(load_file(str(path)), str(path), metadata=meta)
    album = _stub_album(two_people)
    album.reference_cache("ann", model)
    assert album.encodes == {"ann": 1} and album.prepared == {"ann": 1}


def test_the_same_photo_under_two_persons_is_flagged(two_people, stub_faces):
    import shutil

    shutil.copy(two_people / "ann" / "01.png", two_people / "bob" / "09.png")
    album = _stub_album(two_people)
    lines = [line for line in album.problems() if "same photo" in line]
    assert lines == ["ann/01.png and bob/09.png are the same photo under different persons: a face like it may be "
                     "matched to either; remove it from the wrong person's folder"]
    assert album.shared_photo_lines("bob") == lines and album.shared_photo_lines("nobody") == []


def test_a_reference_of_another_person_is_never_chosen(two_people, stub_faces, model, monkeypatch):
    import instantrestore.pipeline.face_restorer as restorer_module
    from instantrestore.faces.align import AlignedFace
    from instantrestore.faces.detect import Face
    from instantrestore.pipeline.face_restorer import FaceRestorer

    _write(two_people / "ann" / "04.png", 7, (-100, -100, 100))  # bob's colours in ann's folder
    album = _stub_album(two_people)
    refs = album.references("ann")
    assert [c.name for c in refs.verification.outliers] == ["04.png"]
    assert [refs.names[i] for i in refs.usable] == ["01.png", "02.png", "03.png"]
    photo = np.asarray(load_image(two_people / "ann" / "01.png"))
    face = Face((0.0, 0.0, SIDE, SIDE), np.zeros((68, 2)), np.zeros((5, 2)))
    monkeypatch.setattr(restorer_module, "align_photo",
                        lambda image, *a, **k: [AlignedFace(photo, np.array([[1.0, 0, 0], [0, 1.0, 0]]), face, SIDE)])
    # the stub photo is its own aligned crop: no detection screening (dlib would see no face in it)
    monkeypatch.setattr(restorer_module, "screen_detections", lambda faces, crops: [None] * len(faces), raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, report = FaceRestorer(model, album=album, k=10).enhance(photo)
    assert report[0]["person"] == "ann", report[0]["fallback"]
    assert report[0]["references"] == ["01.png", "02.png", "03.png"]
    assert any("left out as another person: 04.png" in line for line in report[0]["warnings"])

