"""Nothing wrong is ever silent, no ordinary mistake is an "unexpected error": stale outputs redone,
lossy or unsafe requests refused, skipped files and fallbacks said, each user mistake or missing
resource one line with the fix and exit 2 (docs/bad_input.md)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import noise_image, run_cli
from instantrestore.cli import main

SIDE = 64



def argparse_refuses(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    assert exc.value.code == 2
    return capsys.readouterr().err


def _noise(path: Path, seed: int, shape=(SIDE, SIDE)) -> Path:
    return noise_image(path, seed, shape)


class MeanColour:
    """A stand-in identity model: the mean colour of the crop (no dlib)."""

    name = "mean-colour"
    threshold = 0.9

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(images.float().mean(dim=(2, 3)) + 1.5, dim=-1)


@pytest.fixture
def faces_everywhere(monkeypatch):
    """Every crop counts as a face and identities are mean colours: the reference checks run on noise."""
    import instantrestore.faces.identity as identity
    import instantrestore.faces.verify as verify

    monkeypatch.setattr(verify, "has_face", lambda crop, threshold=None: True)
    monkeypatch.setattr(identity, "load_embedder", lambda spec, device="cpu": MeanColour())


def _tinted(path: Path, seed: int, tint, side: int = SIDE) -> Path:
    noise = np.random.default_rng(seed).integers(-30, 31, (side, side, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(128 + np.array(tint) + noise, 0, 255).astype(np.uint8)).save(path)
    return path


# ------------------------------------------------------------------ silent wrong output
def test_aligned_resume_notices_a_replaced_input(micro_weights, tmp_path, capsys):
    face = _noise(tmp_path / "faces" / "a.png", 1)
    args = ["restore", tmp_path / "faces", "--aligned", "--out", tmp_path / "out", "--checkpoint",
            micro_weights / "model", "--verify-refs", "off"]
    assert run_cli(capsys, *args)[0] == 0
    made = (tmp_path / "out" / "a.png").read_bytes()
    _noise(face, 2)  # the same name, another photo
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0 and "made with another model, references or input: a.png" in err and "skipping" not in err
    assert (tmp_path / "out" / "a.png").read_bytes() == made  # kept, and said
    assert run_cli(capsys, *args, "--overwrite")[0] == 0
    assert (tmp_path / "out" / "a.png").read_bytes() != made
    assert "skipping 1 existing" in run_cli(capsys, *args)[2]


def test_photo_restore_to_a_format_that_cannot_record_is_refused(micro_weights, tmp_path, capsys):
    """PNG and JPEG (re-encoded, tests/test_photo_files.py) are written; a TIFF would not record what made it."""
    photo = _noise(tmp_path / "p.png", 1, (80, 96))
    rc, _, err = run_cli(capsys, "restore", photo, "--out", tmp_path / "r.tif", "--checkpoint", micro_weights / "model")
    assert rc == 2 and "byte for byte" in err and "r.png" in err and "r.jpg" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_paste_lists_broken_and_unsafe_records_and_counts_only_what_it_pasted(tmp_path, capsys):
    photo = _noise(tmp_path / "photos" / "p.png", 4, (96, 96))
    aligned, restored = tmp_path / "aligned", tmp_path / "restored"
    aligned.mkdir()
    face = {"index": 0, "crop": "p_00.png", "crop_size": SIDE, "matrix": [[1, 0, -10], [0, 1, -10]]}
    record = {"photo": str(photo), "status": "ok", "faces": [face]}
    (aligned / "p.json").write_text(json.dumps(record))
    (aligned / "broken.json").write_text('{"photo": "p.png", "status": "ok", "faces": [')
    outside = _noise(tmp_path / "secret.png", 6)
    (aligned / "evil.json").write_text(json.dumps({**record, "faces": [{**face, "crop": "../secret.png"}]}))
    _noise(restored / "p_00.png", 5)
    rc, out, err = run_cli(capsys, "paste", aligned, restored, tmp_path / "final")
    assert rc == 1
    assert "pasted 1 face(s) into 1 photo(s)" in out, out
    assert "broken.json: not a record of `instantrestore align`" in err and "'../secret.png'" in err, err
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == ["p.png"] and outside.is_file()


def test_counts_below_one_are_refused_not_replaced(capsys, tmp_path):
    err = argparse_refuses(capsys, "restore", tmp_path, "--out", tmp_path / "o", "-k", "0", "--backbone", "tiny")
    assert "at least 1" in err
    err = argparse_refuses(capsys, "refs", tmp_path / "a.png", tmp_path, "-k", "-5")
    assert "at least 0" in err and "keep all" in err
    assert "1-65535" in argparse_refuses(capsys, "ui", "--port", "99999")


def test_gif_and_heic_in_an_input_folder_are_named_not_skipped_silently(tmp_path, capsys):
    _noise(tmp_path / "in" / "a.png", 1)
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "b.gif")
    (tmp_path / "in" / "c.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    rc, out, err = run_cli(capsys, "degrade", tmp_path / "in", tmp_path / "out", "--preset", "sr8")
    assert rc == 0 and "degraded 1 image(s)" in out
    assert "skipped 2 file(s) in a format that is not read (GIF, HEIC): b.gif, c.HEIC" in err, err


def test_photo_summary_does_not_count_an_unreadable_photo_as_restored(micro_weights, tmp_path, capsys):
    _noise(tmp_path / "photos" / "a.png", 1, (80, 96))
    (tmp_path / "photos" / "b.png").write_text("not an image")
    rc, out, err = run_cli(capsys, "restore", tmp_path / "photos", "--out", tmp_path / "out", "--checkpoint",
                           micro_weights / "model")
    assert rc == 2
    assert "wrote 1 photo(s): 0 with faces restored, 1 with none" in err and "1 unreadable" in err, err
    assert "2 photo(s): 0 with faces restored, 1 with none, 1 unreadable (not written)" in out  # no face: none


def test_a_reference_of_another_person_is_left_out_by_refs_and_aligned_restore(faces_everywhere, micro_weights,
                                                                                tmp_path, capsys):
    lq = _tinted(tmp_path / "lq.png", 0, (100, -100, -100))
    for i in range(3):
        _tinted(tmp_path / "refs" / f"r{i}.png", i + 1, (100, -100, -100))
    _tinted(tmp_path / "refs" / "z_other.png", 9, (-100, -100, 100))
    rc, out, err = run_cli(capsys, "refs", lq, tmp_path / "refs", "-k", "0")
    assert rc == 0 and "kept references: r0.png, r1.png, r2.png" in out and "z_other.png" in err, (out, err)
    rc, _, err = run_cli(capsys, "restore", lq, "--refs", tmp_path / "refs", "--out", tmp_path / "o.png",
                         "--checkpoint", micro_weights / "model")
    assert rc == 0 and "left out 1 reference(s)" in err and "with 3 reference(s)" in err, err


# ------------------------------------------------------------------ unclear errors and crashes
def test_verification_accepts_references_of_another_size_as_the_model_does(faces_everywhere, micro_weights,
                                                                          tmp_path, capsys):
    lq = _tinted(tmp_path / "lq.png", 0, (100, -100, -100))
    _tinted(tmp_path / "refs" / "big.png", 1, (100, -100, -100), side=96)
    rc, _, err = run_cli(capsys, "restore", lq, "--refs", tmp_path / "refs", "--out", tmp_path / "o.png",
                         "--checkpoint", micro_weights / "model")
    assert rc == 0 and (tmp_path / "o.png").is_file(), err
    _noise(tmp_path / "photo_refs" / "whole.png", 2, (64, 96))  # a whole photo, not an aligned crop
    rc, _, err = run_cli(capsys, "restore", lq, "--refs", tmp_path / "photo_refs", "--out", tmp_path / "p.png",
                         "--checkpoint", micro_weights / "model")
    assert rc == 2 and "expected an aligned square face crop, got 96x64" in err and "align" in err


def test_a_tiny_image_is_a_photo_with_no_face(micro_weights, tmp_path, capsys):
    _noise(tmp_path / "photos" / "a_tiny.png", 1, (3, 3))
    _noise(tmp_path / "photos" / "b.png", 2, (48, 48))
    rc, out, err = run_cli(capsys, "align", tmp_path / "photos", tmp_path / "aligned")
    assert rc == 0 and "a_tiny.png" in err and "from 2 photo(s)" in out, (out, err)
    rc, _, err = run_cli(capsys, "restore", tmp_path / "photos" / "a_tiny.png", "--out", tmp_path / "out",
                         "--checkpoint", micro_weights / "model")
    report = json.loads((tmp_path / "out" / "a_tiny.json").read_text())
    assert rc == 0 and report["problems"] == ["no face found"], report["problems"]


def test_the_unexpected_errors_of_ordinary_mistakes_are_one_line_with_the_fix(micro_weights, tmp_path, capsys,
                                                                             monkeypatch):
    face = _noise(tmp_path / "face.png", 1)
    model = ["--checkpoint", micro_weights / "model"]
    for name, data in (("corrupt.refs", b"\x10\x00\x00\x00\x00\x00\x00\x00{broken"), ("text.refs", b"notes")):
        (tmp_path / name).write_bytes(data)
        rc, _, err = run_cli(capsys, "restore", face, "--refs-cache", tmp_path / name, "--out", tmp_path / "o.png",
                             *model, "--verify-refs", "off")
        assert rc == 2 and "not a readable reference cache" in err and "--save-cache" in err, err
    if not torch.cuda.is_available():
        rc, _, err = run_cli(capsys, "restore", face, "--aligned", "--out", tmp_path / "o.png", *model,
                             "--device", "cuda", "--verify-refs", "off")
        assert rc == 2 and "no CUDA device" in err and "--device cpu" in err, err
    torch.save({"weight": torch.ones(2)}, tmp_path / "net.pt")  # a state dict, not TorchScript
    rc, _, err = run_cli(capsys, "restore", face, "--refs", face, "--out", tmp_path / "o.png", *model,
                         "--embedder", f"torch:{tmp_path / 'net.pt'}")
    assert rc == 2 and "not a TorchScript file" in err and "torch.jit.script" in err, err

    import huggingface_hub.errors as hub_errors
    import instantrestore.official.hub as hub

    def offline(repo_id, filename):
        raise hub_errors.LocalEntryNotFoundError("cannot find the requested files in the disk cache")
    monkeypatch.setattr(hub, "_download", offline)
    rc, _, err = run_cli(capsys, "restore", face, "--aligned", "--out", tmp_path / "o.png", "--verify-refs", "off",
                         "--checkpoint", "hf://owner/repo/model.pt")
    assert rc == 2 and "cannot be reached" in err and "local path" in err, err
    assert not (tmp_path / "o.png").exists()


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys):
    import instantrestore.cli as cli

    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        rc = cli.main(["info", "--backbone", "tiny"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while starting escaped main() (a traceback for the user)")
    assert rc == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and "KeyboardInterrupt" not in err


def test_python_warnings_print_as_one_line_without_source(monkeypatch, capsys):
    import instantrestore.cli.restore as restore_cli

    def warns(args):
        warnings.warn("something to know", UserWarning)
        return 0
    monkeypatch.setattr(restore_cli, "run_info", warns)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["info", "--backbone", "tiny"]) == 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["warning: something to know"], err


def test_a_write_error_names_the_destination_not_a_temporary(tmp_path):
    from instantrestore.utils.files import atomic_path

    with pytest.raises(OSError) as exc:
        with atomic_path(tmp_path / "result.png") as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert "result.png" in str(exc.value) and "irtmp" not in str(exc.value) and exc.value.errno == 28
    assert not list(tmp_path.iterdir())


def test_an_altered_refs_cache_is_refused_and_an_unchecked_one_said(micro_weights, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    face = _noise(tmp_path / "face.png", 1)
    _noise(tmp_path / "refs" / "r.png", 2)
    model = ["--checkpoint", micro_weights / "model", "--verify-refs", "off"]
    assert run_cli(capsys, "restore", face, "--refs", tmp_path / "refs", "--save-cache", tmp_path / "c.refs",
                   "--out", tmp_path / "a.png", *model)[0] == 0
    with safe_open(str(tmp_path / "c.refs"), framework="pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(tmp_path / "c.refs"))
    name = sorted(tensors)[0]
    save_file({**tensors, name: tensors[name] + 0.25}, str(tmp_path / "altered.refs"), metadata=meta)
    rc, _, err = run_cli(capsys, "restore", face, "--refs-cache", tmp_path / "altered.refs", "--out",
                         tmp_path / "b.png", *model)
    assert rc == 2 and "altered or damaged" in err and not (tmp_path / "b.png").exists(), err
    save_file(tensors, str(tmp_path / "old.refs"), metadata={k: v for k, v in meta.items() if k != "tensors_sha256"})
    rc, _, err = run_cli(capsys, "restore", face, "--refs-cache", tmp_path / "old.refs", "--out", tmp_path / "c.png",
                         *model)
    assert rc == 0 and "records no checksum" in err, err


def test_an_output_format_that_cannot_record_what_made_it_is_refused(micro_weights, tmp_path, capsys):
    face = _noise(tmp_path / "face.png", 1)
    rc, _, err = run_cli(capsys, "degrade", face, tmp_path / "lq.bmp", "--preset", "sr8")
    assert rc == 2 and "write .png or .jpg" in err
    rc, _, err = run_cli(capsys, "restore", face, "--aligned", "--out", tmp_path / "r.tif", "--checkpoint",
                         micro_weights / "model", "--verify-refs", "off")
    assert rc == 2 and "write .png or .jpg" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png"]


def test_an_hf_checkpoint_offline_says_no_network_through_the_real_hub_client(tmp_path):
    """Not a stub: huggingface_hub itself, offline (HF_HUB_OFFLINE=1, an empty hub cache), in a fresh
    process: one line saying the hub cannot be reached and what to do, exit 2, nothing written."""
    import os
    import subprocess
    import sys

    face = _noise(tmp_path / "face.png", 1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hub"), "INSTANTRESTORE_DEBUG": ""}
    run = subprocess.run([sys.executable, "-m", "instantrestore", "restore", str(face), "--aligned", "--out",
                          str(tmp_path / "o.png"), "--verify-refs", "off", "--checkpoint", "hf://owner/repo/model.pt"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "cannot be reached (no network" in run.stderr and "pass its local path" in run.stderr, run.stderr
    assert "unexpected error" not in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o.png").exists()
