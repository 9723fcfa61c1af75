"""Bad input never ruins a photo silently, never loses a file, never shows a traceback.

The matrix: input kind x command (CLI and API) -> the expected outcome (a clear error naming the
file, a documented fallback, or the correct result), nothing written outside --out, no existing
file changed, no traceback on stderr. docs/bad_input.md is the user-facing table of these cases.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instantrestore.cli import main
from instantrestore.utils.files import atomic_path, clean_stale_temporaries, ensure_outside_inputs
from instantrestore.utils.images import ImageError, check_image_tensor, load_image, read_provenance, save_image
from instantrestore.utils.tensor_io import UntrustedPickleError, load_tensors, read_config, save_tensors


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` -> its sha256 (to prove nothing changed)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return rc, captured.out, captured.err


# ------------------------------------------------------------------ image modes
GREY = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)  # the expected 8-bit values


def _mode_image(mode: str) -> Image.Image:
    if mode in ("I;16", "I;16B"):
        data = GREY.astype(np.uint16) * 257
        if mode == "I;16B":
            return Image.frombytes("I;16B", (64, 64), data.astype(">u2").tobytes())
        return Image.fromarray(data)
    if mode == "I":
        return Image.fromarray(GREY.astype(np.int32) * 257)
    if mode == "F":
        return Image.fromarray(GREY.astype(np.float32) / 255)
    if mode == "LA":
        return Image.fromarray(np.stack([GREY, np.full_like(GREY, 255)], -1), "LA")
    if mode == "P":
        im = Image.fromarray(GREY).convert("P")
        im.info["transparency"] = 300  # no palette entry is transparent; only the mode path is exercised
        return im
    raise AssertionError(mode)


@pytest.mark.parametrize("mode,suffix", [("I;16", ".png"), ("I;16B", ".tif"), ("I", ".tif"), ("F", ".tif"),
                                         ("LA", ".png"), ("P", ".png")])
def test_every_pillow_mode_loads_with_its_grey_levels(mode, suffix, tmp_path):
    path = tmp_path / f"x{suffix}"
    _mode_image(mode).save(path)
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb[..., 0].astype(int) - GREY).max() <= 1, f"{mode} ({Image.open(path).mode}) mis-scaled"


def test_sixteen_bit_grey_photo_is_not_white(tmp_path):
    Image.fromarray(np.full((32, 32), 20000, np.uint16)).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode.startswith("I;16")
    assert np.asarray(load_image(tmp_path / "g.png")).max() == round(20000 / 65535 * 255)


def test_palette_with_a_transparent_index_is_composited_on_white(tmp_path):
    im = Image.fromarray(np.zeros((8, 8), np.uint8)).convert("P")
    im.save(tmp_path / "p.png", transparency=0)
    assert np.asarray(load_image(tmp_path / "p.png")).min() == 255


def test_folder_given_as_image_is_named(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


# ------------------------------------------------------------------ the matrix: input kind x image-reading command
BAD_KINDS = ["16-bit grey", "noise", "text named .png", "zero-byte", "folder"]
IMAGE_COMMANDS = ["degrade", "align", "restore", "eval"]


def _write_input(kind: str, path: Path) -> None:
    """An input of ``kind`` at ``path`` (named like an image)."""
    if kind == "16-bit grey":
        Image.fromarray(np.repeat(np.repeat(GREY, 2, 0), 2, 1).astype(np.uint16) * 257).save(path)  # I;16 gradient
    elif kind == "noise":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(path)
    elif kind == "text named .png":
        path.write_text("these are notes, not an image\n")
    elif kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    else:
        raise AssertionError(kind)


def _command_args(command: str, bad: Path, root: Path, out: Path) -> list:
    if command == "degrade":
        return ["degrade", bad, out / "bad.png", "--preset", "sr8"]
    if command == "align":
        return ["align", bad, out, "--fallback", "none"]
    if command == "restore":
        return ["restore", bad, "--out", out / "bad.png", "--backbone", "tiny"]
    if command == "eval":  # eval reads folders: the bad file is one prediction among good ones
        return ["eval", "--pred", bad.parent, "--gt", root / "gt", "--out", out, "--metrics", "psnr"]
    raise AssertionError(command)


UNREADABLE = {"text named .png": "not an image file", "zero-byte": "not an image file"}


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("command", IMAGE_COMMANDS)
def test_bad_input_matrix(kind, command, tmp_path, capsys):
    """Each bad input through each command that reads images: the documented outcome, no traceback,
    nothing written outside --out and no file that was there before changed."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir(), out.mkdir(), (tmp_path / "gt").mkdir()
    bad = inputs / "bad.png"
    _write_input(kind, bad)
    good = Image.fromarray(np.repeat(np.repeat(GREY, 2, 0), 2, 1)).convert("RGB")  # bad.png's 8-bit truth
    good.save(tmp_path / "gt" / "bad.png")
    if command == "eval":
        good.save(inputs / "good.png"), good.save(tmp_path / "gt" / "good.png")
    (inputs / "notes.txt").write_text("the user's file\n")
    (out / "keep.txt").write_text("already in --out\n")
    outside = {k: v for k, v in tree_digest(tmp_path).items() if not k.startswith("out/")}
    kept = tree_digest(out)

    rc, stdout, err = run_cli(capsys, *_command_args(command, bad, tmp_path, out))

    assert {k: v for k, v in tree_digest(tmp_path).items() if not k.startswith("out/")} == outside
    assert all(tree_digest(out)[name] == digest for name, digest in kept.items())
    assert not [p for p in out.rglob(".*")], "a temporary was left behind"
    lines = err.splitlines()
    if kind in UNREADABLE:
        # one line naming the file and what is wrong with it
        assert [line for line in lines if "bad.png" in line and UNREADABLE[kind] in line], err
        assert rc == {"degrade": 1, "align": 1, "restore": 2, "eval": 0}[command], (rc, err)
        if command in ("degrade", "restore"):
            assert not (out / "bad.png").exists()
        if command == "eval":  # the good pair is still measured, the bad one listed
            assert "bad" in json.dumps(json.loads((out / "summary.json").read_text())["problems"])
    elif kind == "folder":
        if command == "eval":  # not an image file, so not paired: the truth is listed as unmeasured
            assert rc == 0 and [line for line in lines if "bad" in line and "not measured" in line], err
        else:
            assert rc == 2 and [line for line in lines if "bad.png" in line and "error" in line], err
            assert tree_digest(out) == kept
    else:  # readable images: the documented result
        assert rc == 0, err
        if command == "degrade":
            assert np.asarray(load_image(out / "bad.png")).mean() < 200  # 16-bit grey is not clipped to white
        elif command == "align":
            assert "no face found" in err and json.loads((out / "bad.json").read_text())["status"] == "no_face"
        elif command == "restore":
            assert "no face found" in err and "RANDOM weights" in err and (out / "bad.png").is_file()
        else:
            rows = {r.split(",")[0]: r for r in (out / "per_image.csv").read_text().splitlines()[1:]}
            assert set(rows) == {"bad", "good"}
            if kind == "16-bit grey":  # read by bit depth: identical to its 8-bit truth (PSNR inf), like good.png
                summary = json.loads((out / "summary.json").read_text())
                assert summary["metrics"]["psnr"]["n_infinite"] == 2, summary["metrics"]


# ------------------------------------------------------------------ API boundary
@pytest.fixture(scope="module")
def micro_model(micro_weights):
    from instantrestore import InstantRestore
    return InstantRestore.from_pretrained(micro_weights / "model")


def test_api_takes_numpy_arrays_and_folders(micro_model, tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(tmp_path / f"{i}.png")
    out = micro_model.restore(arrays[0])
    assert isinstance(out, Image.Image) and out.size == (64, 64)
    from_folder = micro_model.encode_references(tmp_path)  # a folder of references, not "no such file"
    from_arrays = micro_model.encode_references(arrays)
    name = sorted(from_folder.keys)[0]
    assert torch.allclose(from_folder.keys[name], from_arrays.keys[name])
    assert len(micro_model.restore(tmp_path)) == 2


@pytest.mark.parametrize("bad,error,match", [
    (np.zeros((64, 64, 3), np.float32), ValueError, "uint8"),
    (torch.full((1, 3, 64, 64), 200.0), ValueError, r"0\.\.255"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), ValueError, "float"),
    (12, TypeError, "got int"),
])
def test_api_refuses_bad_arrays_with_the_fix(micro_model, bad, error, match):
    with pytest.raises(error, match=match):
        micro_model.restore(bad)


def test_tensor_range_check_allows_small_overshoot():
    check_image_tensor(torch.full((1, 3, 4, 4), 1.2))
    with pytest.raises(ValueError, match="expected values in"):
        check_image_tensor(torch.full((1, 3, 4, 4), 255.0))


def test_empty_folder_of_references_is_named(micro_model, tmp_path):
    with pytest.raises(ImageError, match="folder has no images"):
        micro_model.encode_references(tmp_path)


# ------------------------------------------------------------------ checkpoint files (tensor_io)
def test_corrupted_safetensors_names_the_file(tmp_path):
    path = tmp_path / "adapters.safetensors"
    save_tensors({"a": torch.ones(4)}, path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"adapters\.safetensors.*corrupted"):
        load_tensors(path)


def test_broken_config_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"format": "instantrestore/1", "model": {')
    with pytest.raises(ValueError, match=r"config\.json: broken JSON"):
        read_config(tmp_path)


def test_pickle_refusal_says_why_and_adapters_pt_is_found_when_trusted(tmp_path):
    torch.save({"a": torch.ones(2)}, tmp_path / "adapters.pt")
    with pytest.raises(UntrustedPickleError, match="run arbitrary code"):
        load_tensors(tmp_path / "adapters.safetensors")
    assert torch.equal(load_tensors(tmp_path / "adapters.safetensors", trust_pickle=True)["a"], torch.ones(2))


def _checkpoint_cases(root: Path, micro: Path) -> dict[str, tuple[list[str], str]]:
    """kind -> (--checkpoint arguments, text the error must contain)."""
    import shutil

    corrupt = root / "corrupt"
    shutil.copytree(micro, corrupt)
    data = (corrupt / "adapters.safetensors").read_bytes()
    (corrupt / "adapters.safetensors").write_bytes(data[: len(data) // 2])
    empty = root / "empty"
    empty.mkdir()
    broken = root / "broken"
    shutil.copytree(micro, broken)
    (broken / "config.json").write_text("{not json")
    pickled = root / "weights.pt"
    torch.save({"a": torch.ones(2)}, pickled)
    pt_folder = root / "ptfolder"
    shutil.copytree(micro, pt_folder)
    from instantrestore.utils.tensor_io import load_tensors as load
    torch.save(load(micro / "adapters.safetensors"), pt_folder / "adapters.pt")
    (pt_folder / "adapters.safetensors").unlink()
    return {
        "corrupted safetensors": ([str(corrupt)], "adapters.safetensors"),
        "empty folder": ([str(empty)], "not a checkpoint"),
        "mistyped local path": ([str(root / "no_such_model")], "no such file or folder"),
        "mistyped relative path": (["runs/typo/final"], "no such file or folder"),
        "broken config.json": ([str(broken)], "config.json"),
        "non-official pickle": ([str(pickled)], "arbitrary code"),
        "adapters.pt untrusted": ([str(pt_folder)], "--trust-pickle"),
    }


@pytest.mark.parametrize("kind", ["corrupted safetensors", "empty folder", "mistyped local path",
                                  "mistyped relative path", "broken config.json", "non-official pickle",
                                  "adapters.pt untrusted"])
@pytest.mark.parametrize("command", ["info", "restore"])
def test_bad_checkpoint_is_one_line_naming_the_file(kind, command, micro_weights, tmp_path, capsys):
    ckpt, needle = _checkpoint_cases(tmp_path, micro_weights / "model")[kind]
    face = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(face)
    before = tree_digest(tmp_path)
    extra = [face, "--out", tmp_path / "out", "--verify-refs", "off"] if command == "restore" else []
    rc, _, err = run_cli(capsys, command, *extra, "--checkpoint", *ckpt)
    assert rc == 2 and needle in err, err
    assert tree_digest(tmp_path) == before  # nothing written, nothing changed


def test_adapters_pt_folder_loads_with_trust_pickle(micro_weights, tmp_path, capsys):
    ckpt, _ = _checkpoint_cases(tmp_path, micro_weights / "model")["adapters.pt untrusted"]
    rc, out, err = run_cli(capsys, "info", "--checkpoint", *ckpt, "--trust-pickle")
    assert rc == 0 and "injected layers" in out
    assert "synthetic faces" in err  # the tiny backbone says it is not a real-photo model


# ------------------------------------------------------------------ model warnings
def test_random_and_synthetic_models_say_so_at_load_time(micro_weights, capsys):
    rc, _, err = run_cli(capsys, "info", "--backbone", "tiny")
    assert rc == 0 and "RANDOM weights" in err
    rc, _, err = run_cli(capsys, "info", "--checkpoint", micro_weights / "model")
    assert rc == 0 and "NOT a restoration" in err


def test_api_warns_once_for_a_synthetic_world_model_and_the_cli_prints_one_line(micro_weights, capsys):
    import warnings

    from instantrestore import InstantRestore
    from instantrestore.generator.model_io import SyntheticModelWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        InstantRestore.from_pretrained(micro_weights / "model")
    found = [w for w in caught if issubclass(w.category, SyntheticModelWarning)]
    assert len(found) == 1 and issubclass(found[0].category, UserWarning)
    assert "synthetic" in str(found[0].message) and found[0].filename == __file__  # points at the caller
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc, _, err = run_cli(capsys, "info", "--checkpoint", micro_weights / "model")
    # the CLI's own line, not the library warning too
    assert rc == 0 and len([line for line in err.splitlines() if "synthetic" in line]) == 1
    assert "SyntheticModelWarning" not in err
    assert not [w for w in caught if issubclass(w.category, SyntheticModelWarning)]


# ------------------------------------------------------------------ interrupt, unexpected errors
def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import instantrestore.cli.restore as restore_cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(restore_cli, "run_info", interrupted)
    import instantrestore.cli as cli
    parser = cli.build_parser  # the parser binds func at build time: rebuild after the patch
    assert parser is not None
    rc, _, err = run_cli(capsys, "info", "--backbone", "tiny")
    assert rc == 130 and "interrupted" in err


# ------------------------------------------------------------------ output folders
def test_output_folder_is_contains_or_inside_an_input(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for out in (tmp_path / "in", tmp_path / "in" / "sub", tmp_path):
        with pytest.raises(ValueError, match="input folder"):
            ensure_outside_inputs(out, [tmp_path / "in"])
    ensure_outside_inputs(tmp_path / "elsewhere", [tmp_path / "in"])


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_restore_refuses_out_in_input_folder(where, tmp_path, capsys):
    lq = tmp_path / "lq"
    lq.mkdir()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(lq / "a.png")
    out = {"same": lq, "inside": lq / "restored", "contains": tmp_path}[where]
    before = tree_digest(tmp_path)
    rc, _, err = run_cli(capsys, "restore", lq, "--out", out, "--backbone", "tiny", "--verify-refs", "off")
    assert rc == 2 and "input folder" in err
    assert tree_digest(tmp_path) == before


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    stale = tmp_path / ".a.png.irtmp-999999999-x1.png"
    stale.write_bytes(b"half")
    live = tmp_path / f".b.png.irtmp-{os.getppid()}-x2.png"
    live.write_bytes(b"writing")
    assert clean_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and not stale.exists()
    with atomic_path(tmp_path / "c.png") as tmp:
        assert f"irtmp-{os.getpid()}-" in tmp.name


def test_provenance_round_trip(tmp_path):
    save_image(Image.new("RGB", (4, 4)), tmp_path / "a.png", provenance='{"model": "x"}')
    save_image(Image.new("RGB", (4, 4)), tmp_path / "a.jpg", provenance='{"model": "y"}')
    assert read_provenance(tmp_path / "a.png") == '{"model": "x"}'
    assert read_provenance(tmp_path / "a.jpg") == '{"model": "y"}'
    Image.new("RGB", (4, 4)).save(tmp_path / "b.png")
    assert read_provenance(tmp_path / "b.png") is None


# ------------------------------------------------------------------ restore: resume, provenance, no face
@pytest.fixture
def lq_folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "lq").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "lq" / f"{i}.png")
    return tmp_path / "lq"


def test_restore_warns_on_noise_and_refuses_when_strict(lq_folder, micro_weights, tmp_path, capsys):
    ckpt = micro_weights / "model"
    rc, _, err = run_cli(capsys, "restore", lq_folder / "0.png", "--aligned", "--out", tmp_path / "o.png",
                         "--checkpoint", ckpt)
    assert rc == 0 and "no face found" in err
    rc, _, err = run_cli(capsys, "restore", lq_folder / "1.png", "--aligned", "--out", tmp_path / "p.png",
                         "--checkpoint", ckpt, "--verify-refs", "strict")
    assert rc == 2 and "no face found" in err and not (tmp_path / "p.png").exists()


def test_restore_keeps_foreign_files_and_outputs_of_another_model(lq_folder, micro_weights, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (8, 8), "red").save(out / "0.png")  # the user's file, not restore's
    foreign = tree_digest(out)
    args = ["restore", lq_folder, "--out", out, "--verify-refs", "off"]
    rc, _, err = run_cli(capsys, *args, "--checkpoint", micro_weights / "model")
    assert rc == 0 and "no record of restore making them" in err
    assert tree_digest(out)["0.png"] == foreign["0.png"]
    made = tree_digest(out)
    rc, _, err = run_cli(capsys, *args, "--checkpoint", micro_weights / "model_no_las")
    assert rc == 0 and "made with another model" in err and tree_digest(out) == made
    rc, _, err = run_cli(capsys, *args, "--checkpoint", micro_weights / "model")
    assert rc == 0 and "skipping 2 existing" in err and tree_digest(out) == made


# ------------------------------------------------------------------ folder jobs: interrupt, re-run, compare
def _interrupt_after(monkeypatch, module, calls: int):
    """Make ``module.save_image`` raise KeyboardInterrupt on its ``calls+1``-th call (a stop mid-run)."""
    real = module.save_image
    count = {"n": 0}

    def save(*args, **kwargs):
        if count["n"] >= calls:
            raise KeyboardInterrupt
        count["n"] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(module, "save_image", save)


def test_degrade_interrupted_then_resumed_equals_uninterrupted(lq_folder, tmp_path, monkeypatch, capsys):
    import instantrestore.pipeline.folder_jobs as folder_jobs

    run_cli(capsys, "degrade", lq_folder, tmp_path / "full", "--preset", "sr8")
    with monkeypatch.context() as m:
        _interrupt_after(m, folder_jobs, 1)
        rc, _, err = run_cli(capsys, "degrade", lq_folder, tmp_path / "part", "--preset", "sr8")
    assert rc == 130 and "interrupted" in err
    assert len(list((tmp_path / "part").glob("*"))) == 1
    run_cli(capsys, "degrade", lq_folder, tmp_path / "part", "--preset", "sr8")
    assert tree_digest(tmp_path / "part") == tree_digest(tmp_path / "full")


def test_degrade_keeps_outputs_of_other_settings_with_a_warning(lq_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "degrade", lq_folder, out, "--preset", "sr8", "--seed", "1")[0] == 0
    made = tree_digest(out)
    rc, out_text, err = run_cli(capsys, "degrade", lq_folder, out, "--preset", "sr8", "--seed", "1")
    assert rc == 0 and "3 already present" in out_text and "warning" not in err
    for extra in (["--preset", "sr8", "--seed", "2"], ["--preset", "paper", "--seed", "1"],
                  ["--preset", "sr8", "--seed", "1", "--override", "noise_range=0,5"]):
        rc, _, err = run_cli(capsys, "degrade", lq_folder, out, *extra)
        assert rc == 0 and "kept 3 existing output(s) made with another preset, seed or input" in err, extra
        assert tree_digest(out) == made
    Image.new("RGB", (8, 8), "red").save(out / "1.png")  # not degrade's
    rc, _, err = run_cli(capsys, "degrade", lq_folder, out, "--preset", "sr8", "--seed", "1")
    assert rc == 0 and "no record of degrade making them: 1.png" in err
    rc, _, err = run_cli(capsys, "degrade", lq_folder, out, "--preset", "sr8", "--seed", "1", "--overwrite")
    assert rc == 0 and tree_digest(out) == made


def test_restore_interrupted_then_resumed_equals_uninterrupted(lq_folder, micro_weights, tmp_path, monkeypatch,
                                                               capsys):
    import instantrestore.pipeline.folder_jobs as folder_jobs

    args = ["--aligned", "--checkpoint", micro_weights / "model", "--verify-refs", "off"]
    run_cli(capsys, "restore", lq_folder, "--out", tmp_path / "full", *args)
    with monkeypatch.context() as m:
        _interrupt_after(m, folder_jobs, 2)
        assert run_cli(capsys, "restore", lq_folder, "--out", tmp_path / "part", *args)[0] == 130
    rc, _, err = run_cli(capsys, "restore", lq_folder, "--out", tmp_path / "part", *args)
    assert rc == 0 and "skipping 2 existing" in err
    assert tree_digest(tmp_path / "part") == tree_digest(tmp_path / "full")


@pytest.mark.slow
def test_degrade_kill_9_leaves_no_temporary_after_rerun(tmp_path):
    """A real kill -9 mid-run: the re-run removes the dead run's temporaries and completes the job."""
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(src / f"{i:02d}.png")
    cmd = [sys.executable, "-m", "instantrestore", "degrade", str(src), str(tmp_path / "out"), "--preset", "paper"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "out").glob("*.png"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # a temporary as the killed writer would leave it (the kill may or may not land inside a write)
    (tmp_path / "out" / f".17.png.irtmp-{proc.pid}-abc.png").write_bytes(b"half")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(cmd[:5] + [str(tmp_path / "full")] + cmd[6:], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert tree_digest(tmp_path / "out") == tree_digest(tmp_path / "full")


# ------------------------------------------------------------------ real photos: align, paste, refs, eval
@pytest.fixture
def photos(realfaces_dir, tmp_path):
    """Two real photos in a folder of their own (copied into the test's tmp folder only)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("o1.jpg", "o3.jpg"):
        image = Image.open(realfaces_dir / "obama" / "raw_photos" / name).convert("RGB")
        image.thumbnail((400, 400))
        image.save(folder / name)
    return folder


def test_align_never_overwrites_a_file_it_did_not_write(photos, capsys):
    unrelated = photos / "o1_00.png"
    Image.new("RGB", (8, 8), "blue").save(unrelated)
    before = tree_digest(photos)
    rc, _, err = run_cli(capsys, "align", photos / "o1.jpg", photos)
    assert rc == 1 and "--overwrite" in err and "o1_00.png" in err
    assert tree_digest(photos) == before
    rc, _, _ = run_cli(capsys, "align", photos / "o1.jpg", photos, "--overwrite")
    assert rc == 0 and tree_digest(photos)["o1_00.png"] != before["o1_00.png"]


def test_align_and_paste_resume_and_paste_refuses_small_crops(photos, tmp_path, monkeypatch, capsys):
    import instantrestore.pipeline.folder_jobs as folder_jobs

    aligned, full = tmp_path / "aligned", tmp_path / "aligned_full"
    run_cli(capsys, "align", photos, full, "--size", "256")
    with monkeypatch.context() as m:
        _interrupt_after(m, folder_jobs, 1)
        assert run_cli(capsys, "align", photos, aligned, "--size", "256")[0] == 130
    assert run_cli(capsys, "align", photos, aligned, "--size", "256")[0] == 0
    assert tree_digest(aligned) == tree_digest(full)
    rc, out, _ = run_cli(capsys, "align", photos, aligned, "--size", "256")
    assert rc == 0 and "2 already done" in out

    restored = tmp_path / "restored"
    restored.mkdir()
    for crop in aligned.glob("*.png"):
        Image.open(crop).resize((64, 64)).save(restored / crop.name)  # a 64 px model output over 256 px crops
    rc, _, err = run_cli(capsys, "paste", aligned, restored, tmp_path / "final")
    assert rc == 0 and "far smaller" in err and "NOT pasted" in err
    for name in ("o1.png", "o3.png"):  # the faces kept their original pixels
        assert (tmp_path / "final" / name).exists()
    made = tree_digest(tmp_path / "final")
    rc, out, err = run_cli(capsys, "paste", aligned, restored, tmp_path / "final")
    assert rc == 0 and "2 already pasted" in out and "warning" not in err  # same crops, same settings
    rc, out, err = run_cli(capsys, "paste", aligned, restored, tmp_path / "final", "--allow-small")
    # --allow-small would paste what the first run refused: kept, with a warning, not taken as done
    assert "2 already pasted" in out and "pasted from other restored crops" in err
    assert tree_digest(tmp_path / "final") == made


def _aligned_and_restored(photos, tmp_path, capsys, side: int = 256) -> tuple[Path, Path]:
    """Align ``photos`` at 256 px and make 'restored' crops of ``side`` px from them."""
    aligned, restored = tmp_path / "aligned", tmp_path / "restored"
    assert run_cli(capsys, "align", photos, aligned, "--size", "256")[0] == 0
    restored.mkdir()
    for crop in sorted(aligned.glob("*.png")):
        Image.open(crop).transpose(Image.FLIP_LEFT_RIGHT).resize((side, side)).save(restored / crop.name)
    return aligned, restored


def test_paste_interrupted_then_resumed_equals_uninterrupted(photos, tmp_path, monkeypatch, capsys):
    import instantrestore.pipeline.folder_jobs as folder_jobs

    aligned, restored = _aligned_and_restored(photos, tmp_path, capsys)
    assert run_cli(capsys, "paste", aligned, restored, tmp_path / "full")[0] == 0
    with monkeypatch.context() as m:
        _interrupt_after(m, folder_jobs, 1)
        rc, _, err = run_cli(capsys, "paste", aligned, restored, tmp_path / "part")
    assert rc == 130 and "interrupted" in err
    assert len(list((tmp_path / "part").iterdir())) == 1  # one photo pasted, no temporary left
    rc, out, err = run_cli(capsys, "paste", aligned, restored, tmp_path / "part")
    assert rc == 0 and "1 already pasted" in out and "warning" not in err
    assert tree_digest(tmp_path / "part") == tree_digest(tmp_path / "full")


def test_paste_keeps_photos_pasted_from_other_crops_with_a_warning(photos, tmp_path, capsys):
    aligned, restored = _aligned_and_restored(photos, tmp_path, capsys)
    final = tmp_path / "final"
    assert run_cli(capsys, "paste", aligned, restored, final)[0] == 0
    made = tree_digest(final)
    crop = sorted(restored.glob("*.png"))[0]
    Image.open(crop).rotate(90).save(crop)  # restored again, differently (another model, say)
    rc, out, err = run_cli(capsys, "paste", aligned, restored, final)
    assert rc == 0 and "pasted from other restored crops" in err and f"{crop.stem.rsplit('_', 1)[0]}.png" in err
    assert tree_digest(final) == made
    Image.new("RGB", (8, 8), "red").save(final / "o3.png")  # not paste's file
    rc, _, err = run_cli(capsys, "paste", aligned, restored, final)
    assert "no record of paste making them" in err and "o3.png" in err
    rc, _, err = run_cli(capsys, "paste", aligned, restored, final, "--overwrite")
    assert rc == 0 and "kept" not in err and tree_digest(final)["o3.png"] == made["o3.png"]
    assert tree_digest(final)[f"{crop.stem.rsplit('_', 1)[0]}.png"] != made[f"{crop.stem.rsplit('_', 1)[0]}.png"]
    assert run_cli(capsys, "paste", aligned, restored, final)[2].count("warning") == 0


@pytest.fixture(scope="module")
def celebref(realfaces_dir):
    root = realfaces_dir / "celebref"
    people = sorted(p for p in root.iterdir() if p.is_dir())
    return people


@pytest.mark.parametrize("kind", ["white", "white 16-bit", "noise", "other person", "same person"])
def test_refs_verification_rejects_faceless_and_wrong_inputs(kind, celebref, tmp_path, capsys):
    person, other = celebref[0], celebref[1]
    lq = tmp_path / "lq.png"
    if kind == "white":
        Image.new("RGB", (512, 512), "white").save(lq)
    elif kind == "white 16-bit":
        Image.fromarray(np.full((512, 512), 65535, np.uint16)).save(lq)
    elif kind == "noise":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(lq)
    else:
        lq = next((other if kind == "other person" else person).glob("degraded_*.png"))
    refs = tmp_path / "refs"
    refs.mkdir()
    for p in sorted((person / "references").iterdir())[:3]:
        Image.open(p).save(refs / p.name)
    rc, out, err = run_cli(capsys, "refs", lq, refs, "-k", "0")
    assert rc == 0
    if kind == "same person":
        assert "references verified: ok" in out
    else:
        assert "problems found" in out
        assert ("no face found" in err) == (kind in ("white", "white 16-bit", "noise")), err
    rc, _, err = run_cli(capsys, "refs", lq, refs, "-k", "0", "--verify-refs", "strict")
    assert (rc == 0) == (kind == "same person")


def test_eval_skips_identity_on_faceless_ground_truth_and_says_so(celebref, tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    face = Image.open(next(celebref[0].glob("degraded_*.png"))).resize((256, 256))
    face.save(pred / "a.png"), face.save(gt / "a.png")
    Image.new("RGB", (256, 256), "white").save(pred / "b.png")
    Image.new("RGB", (256, 256), "white").save(gt / "b.png")
    rc, out, err = run_cli(capsys, "eval", "--pred", pred, "--gt", gt, "--out", tmp_path / "report",
                           "--metrics", "psnr,ids", "--faceless", "skip")
    assert rc == 0 and "no face found in 2" in err and "grid.png" in out
    rows = (tmp_path / "report" / "per_image.csv").read_text().splitlines()
    b = next(r for r in rows if r.startswith("b,"))
    assert b.endswith("nan") or ",," in b or "nan" in b
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["metrics"]["ids"]["n"] == 1


def test_eval_with_nothing_measured_does_not_claim_a_grid(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    Image.new("RGB", (32, 32)).save(pred / "a.png")
    Image.new("RGB", (64, 64)).save(gt / "a.png")  # sizes differ: not measured
    rc, out, _ = run_cli(capsys, "eval", "--pred", pred, "--gt", gt, "--out", tmp_path / "r", "--metrics", "psnr")
    assert rc == 1 and "grid.png" not in out and not (tmp_path / "r" / "grid.png").exists()


# ------------------------------------------------------------------ every command has --help with examples
@pytest.mark.parametrize("command", [["restore"], ["info"], ["align"], ["paste"], ["refs"], ["degrade"], ["synth"],
                                     ["make-testset"], ["eval"], ["demo"], ["bench", "synth"],
                                     ["convert-official"]])
def test_help_has_a_description_and_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(command + ["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "instantrestore " + command[0] in out.split("examples:")[1]
