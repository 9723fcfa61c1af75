"""train/data_checks.py: a folder dataset is checked against the run before any model is built."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instantrestore.cli import main
from instantrestore.data.landmark_files import landmarks_path, write_landmarks
from instantrestore.train import TrainConfig, build, train


def _folder(root: Path, people: int = 3, per_person: int = 3, size: int = 48, landmarks: int | None = None,
            odd: dict[str, tuple[int, int]] | None = None) -> Path:
    """people x per_person grey images; the first ``landmarks`` images (None: all) get side files;
    ``odd``: {"person/name.png": (w, h)} extra images of other sizes."""
    written = 0
    for i in range(people):
        for j in range(per_person):
            path = root / f"p{i}" / f"{j}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((size, size, 3), 20 * i + j, np.uint8)).save(path)
            if landmarks is None or written < landmarks:
                write_landmarks(landmarks_path(path), np.full((68, 2), size / 2), size, size)
                written += 1
    for name, (w, h) in (odd or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / name)
    return root


def _config(tmp_path: Path, data: Path, **changes) -> TrainConfig:
    base = dict(data=str(data), image_size=48, batch_size=2, refs_max=2, val_identities=1, steps=1,
                out=str(tmp_path / "run"), preset="sr8",
                loss=dict(lpips=0.0, identity=0.0, adversarial=0.0, landmark_attention=5000.0))
    base.update(changes)
    return TrainConfig.from_dict(base)


@pytest.fixture()
def no_models(monkeypatch):
    """Building a model fails the test: the checks must come first."""
    monkeypatch.setattr(build, "build_model", lambda config: pytest.fail("a model was built before the data check"))


def test_las_on_a_dataset_without_landmarks_is_refused_naming_prepare_data(tmp_path, no_models):
    data = _folder(tmp_path / "data", landmarks=0)
    with pytest.raises(ValueError, match=r"`instantrestore prepare-data .*data`.*--set loss.landmark_attention=0"):
        train(_config(tmp_path, data), progress=False)
    with pytest.raises(ValueError, match="landmarks: none"):
        train(_config(tmp_path, _folder(tmp_path / "marked"), landmarks="none"), progress=False)


def test_the_cli_refuses_it_with_exit_2(tmp_path, capsys, no_models):
    data = _folder(tmp_path / "data", people=5, landmarks=0)  # the defaults hold out 4 people
    code = main(["train", "--backbone", "tiny", "--data", str(data), "--steps", "3", "--out", str(tmp_path / "run"),
                 "--batch-size", "2", "--set", "loss.identity=0", "--set", "loss.lpips=0", "--no-progress"])
    assert code == 2
    assert "instantrestore prepare-data" in capsys.readouterr().err


def test_too_few_people_for_the_held_out_split_is_refused(tmp_path, no_models):
    data = _folder(tmp_path / "data", people=2)
    with pytest.raises(ValueError, match=r"2 people .* val_identities=4 .*--set val_identities=1"):
        train(_config(tmp_path, data, val_identities=4), progress=False)


def test_thin_people_mixed_sizes_and_partial_landmarks_are_reported(tmp_path, caplog):
    data = _folder(tmp_path / "data", landmarks=2, odd={"p0/big.png": (96, 96), "p1/wide.png": (64, 48),
                                                        "solo/only.png": (48, 48)})
    with caplog.at_level(logging.WARNING):
        dataset, train_idx, val_idx = build.build_dataset(_config(tmp_path, data))
    text = caplog.text
    assert "skipped 1 identity with fewer than 2 usable images" in text and "solo" in text
    assert "mixed image sizes: 48x48 (9), 96x96 (1), 64x48 (1)" in text
    assert "1 image(s) are not square" in text
    assert "2 of 8 training images have landmarks" in text and "las_queries" in text
    assert len(train_idx) == 8 and val_idx  # p0, p1 train; p2 held out
    assert build.held_out_people(_config(tmp_path, data), dataset) == ["p2"]


def test_excluded_images_of_the_manifest_stay_out_of_training(tmp_path):
    from instantrestore.data.manifest import write_manifest

    data = _folder(tmp_path / "data")
    write_manifest(data, {"excluded": {"p0/0.png": "no face: dlib finds no face"}})
    dataset, train_idx, _ = build.build_dataset(_config(tmp_path, data))
    assert data / "p0" / "0.png" not in dataset.identities[0].images and len(train_idx) == 5
