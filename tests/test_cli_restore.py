from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from instantrestore import InstantRestore
from instantrestore.cli import main


@pytest.fixture
def faces(tmp_path):
    rng = np.random.default_rng(0)
    for folder, n in (("lq", 2), ("refs", 2)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    return tmp_path


def test_restore_folder_with_cache_round_trip_and_resume(faces, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    InstantRestore.from_config("tiny", seed=1).save_pretrained(ckpt)
    out = tmp_path / "out"
    args = ["restore", str(faces / "lq"), "--refs", str(faces / "refs"), "--out", str(out), "--checkpoint", str(ckpt),
            "--save-cache", str(tmp_path / "album.refs")]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png"]
    first = np.asarray(Image.open(out / "0.png"))
    (out / "1.png").unlink()
    assert main(["restore", str(faces / "lq"), "--refs-cache", str(tmp_path / "album.refs"), "--out", str(out),
                 "--checkpoint", str(ckpt)]) == 0
    assert "skipping 1 existing" in capsys.readouterr().err
    assert (out / "1.png").exists()
    assert np.array_equal(np.asarray(Image.open(out / "0.png")), first)


def test_restore_refuses_to_overwrite_input_and_needs_a_model(faces, capsys):
    lq = faces / "lq" / "0.png"
    assert main(["restore", str(lq), "--out", str(lq), "--backbone", "tiny"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["info"]) == 2  # restore runs the shipped model (test_photo_files.py); info needs one named
    assert "no model chosen" in capsys.readouterr().err


def test_info_lists_injected_layers(capsys):
    assert main(["info", "--backbone", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "injected layers:   4" in out and "up_blocks.2.attentions.1.transformer_blocks.0.attn1" in out
