"""Nothing a user owns is ever overwritten: every command that writes a file, against files already
at each path it writes (docs/bad_input.md).

The fuzz test runs each writing command once into an empty place to learn every file it writes,
then again with a file of the user's already at each of those paths: without --overwrite every one
of them must come through byte for byte (the command refuses, or keeps them with a warning), with
--overwrite the command may replace them; inputs are never touched, and nothing prints a traceback.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from cli_helpers import noise_image, run_cli
from test_restore_photos import stubs  # noqa: F401 (a fixture: faces found without dlib)

SIDE = 64  # the micro model's size


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}



def _noise(path: Path, seed: int, shape=(SIDE, SIDE)) -> Path:
    return noise_image(path, seed, shape)


def users_file(path: Path) -> None:
    """A file of the user's at ``path``, of the kind its name says (an image with no record, a JSON
    of theirs, notes), so that a command cannot mistake it for its own by its type."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    elif suffix == ".json":
        path.write_text('{"mine": "my own notes, not a report"}\n')
    else:
        path.write_text("the user's own file\n")


# ------------------------------------------------------------------ the writing commands
def _restore_photos(root: Path, model: Path) -> list:
    _noise(root / "photos" / "p.png", 1, (80, 96))
    return ["restore", root / "photos", "--out", root / "out", "--checkpoint", model, "--before-after"]


def _restore_aligned(root: Path, model: Path) -> list:
    for i in range(2):
        _noise(root / "faces" / f"f{i}.png", 10 + i)
    _noise(root / "refs" / "r.png", 20)
    return ["restore", root / "faces", "--refs", root / "refs", "--out", root / "out", "--save-cache",
            root / "person.refs", "--checkpoint", model, "--verify-refs", "off"]


def _degrade(root: Path, model: Path) -> list:
    _noise(root / "in" / "a.png", 2)
    (root / "in" / "a.json").write_text('{"landmarks": []}\n')
    return ["degrade", root / "in", root / "out", "--preset", "sr8"]


def _align(root: Path, model: Path) -> list:
    _noise(root / "photos" / "p.png", 3, (96, 96))
    return ["align", root / "photos", root / "out", "--fallback", "none"]


def _paste(root: Path, model: Path) -> list:
    photo = _noise(root / "photos" / "p.png", 4, (96, 96))
    (root / "aligned").mkdir(parents=True, exist_ok=True)
    face = {"index": 0, "crop": "p_00.png", "crop_size": SIDE, "matrix": [[1, 0, -10], [0, 1, -10]]}
    (root / "aligned" / "p.json").write_text(json.dumps({"photo": str(photo), "status": "ok", "faces": [face]}))
    _noise(root / "restored" / "p_00.png", 5)
    return ["paste", root / "aligned", root / "restored", root / "out"]


def _refs(root: Path, model: Path) -> list:
    _noise(root / "lq.png", 6)
    for i in range(2):
        _noise(root / "refs" / f"r{i}.png", 30 + i)
    return ["refs", root / "lq.png", root / "refs", "-k", "0", "--verify-refs", "off", "--out", root / "refs.json"]


def _attention(root: Path, model: Path) -> list:
    _noise(root / "face.png", 7)
    _noise(root / "refs" / "r.png", 8)
    return ["attention", root / "face.png", "--refs", root / "refs", "--point", "20,20", "--out", root / "map.png",
            "--checkpoint", model]


def _demo(root: Path, model: Path) -> list:
    return ["demo", "--out", root / "out", "--refs", "1", "--device", "cpu"]


def _eval(root: Path, model: Path) -> list:
    for folder in ("pred", "gt"):
        _noise(root / folder / "a.png", 9)
    return ["eval", "--pred", root / "pred", "--gt", root / "gt", "--out", root / "out", "--metrics", "psnr"]


def _synth(root: Path, model: Path) -> list:
    return ["synth", "--out", root / "out", "--identities", "1", "--images-per-identity", "2", "--size", "32"]


def _synth_test_layout(root: Path, model: Path) -> list:
    return [*_synth(root, model), "--test-layout", "--refs", "1"]


def _make_testset(root: Path, model: Path) -> list:
    for i in range(2):
        _noise(root / "people" / "ann" / f"{i}.png", 40 + i, (40, 40))
    (root / "people" / "ann" / "0.json").write_text(json.dumps({"landmarks": [[1, 2]], "width": 40, "height": 40}))
    return ["make-testset", root / "people", "--out", root / "out", "--size", "32", "--refs", "1"]


WRITERS: dict[str, Callable[[Path, Path], list]] = {
    "restore photos": _restore_photos, "restore aligned + save-cache": _restore_aligned, "degrade": _degrade,
    "align": _align, "paste": _paste, "refs": _refs, "attention": _attention, "demo": _demo, "eval": _eval,
    "synth": _synth, "synth --test-layout": _synth_test_layout, "make-testset": _make_testset,
}


@pytest.mark.parametrize("command", list(WRITERS))
def test_no_command_overwrites_a_file_it_did_not_write(command, micro_weights, tmp_path, capsys):
    assert_keeps_the_users_files(command, lambda root: WRITERS[command](root, micro_weights / "model"), tmp_path,
                                 capsys)


def assert_keeps_the_users_files(command: str, make_args: Callable[[Path], list], tmp_path: Path, capsys) -> None:
    """Run ``make_args(root)`` into an empty ``root`` to learn every file it writes, then with a file of
    the user's at all of those paths and at each alone: kept byte for byte, and said how to replace;
    with --overwrite the command may replace them, and inputs stay as they were."""
    fresh = tmp_path / "fresh"
    args = make_args(fresh)
    inputs = digests(fresh)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    written = sorted(set(digests(fresh)) - set(inputs))
    assert written, "the command wrote nothing"

    # the same job with a file of the user's at every path it writes, then at each one alone
    for case, taken_names in enumerate([written] + ([[name] for name in written] if len(written) > 1 else [])):
        taken = tmp_path / f"taken{case}"
        args = make_args(taken)
        for name in taken_names:
            users_file(taken / name)
        before = digests(taken)
        rc, _, err = run_cli(capsys, *args)
        after = digests(taken)
        changed = sorted(name for name in before if after.get(name) != before[name])
        assert not changed, f"{command} replaced {changed} of {taken_names} (rc {rc}): {err}"
        assert "--overwrite" in err, err  # and says how to replace them

    taken = tmp_path / "taken0"
    before = digests(taken)
    rc, _, err = run_cli(capsys, *make_args(taken), "--overwrite")
    assert rc == 0, err
    after = digests(taken)
    assert all(after[name] == before[name] for name in before if name not in written)  # inputs untouched
    assert any(after[name] != before[name] for name in written)  # --overwrite did replace them


@pytest.mark.parametrize("command", list(WRITERS))
def test_a_rerun_replaces_only_what_it_wrote_itself(command, micro_weights, tmp_path, capsys):
    assert_rerun_keeps_inputs(WRITERS[command](tmp_path, micro_weights / "model"), tmp_path, capsys)


def assert_rerun_keeps_inputs(args: list, root: Path, capsys) -> None:
    """The same command run twice: the second run keeps or replaces its own files (a resume, or a
    single-file output made again), never refuses them as the user's, and changes no input."""
    inputs = digests(root)
    assert run_cli(capsys, *args)[0] == 0
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0 and "not written by" not in err and "no record of" not in err, err
    assert {k: v for k, v in digests(root).items() if k in inputs} == inputs


def _restore_photos_every_file(root: Path, model: Path) -> list:
    """A photo with a face (the stubbed detector's), and every file restore can write for it."""
    from test_restore_photos import BOX, TINTS, _tinted

    photo = np.random.default_rng(1).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    photo[BOX[1]:BOX[3], BOX[0]:BOX[2]] = _tinted(5, TINTS["ann"])
    (root / "photos").mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(root / "photos" / "p.jpg")
    return ["restore", root / "photos", "--out", root / "out", "--checkpoint", model, "--before-after",
            "--save-faces", "--draw-box", "--suffix", "s"]


def test_photo_restore_never_overwrites_a_file_of_the_users_among_any_of_its_files(stubs, micro_weights, tmp_path,
                                                                                     capsys):
    make = lambda root: _restore_photos_every_file(root, micro_weights / "model")  # noqa: E731
    assert_keeps_the_users_files("restore photos, every file", make, tmp_path, capsys)
    written = sorted(p.relative_to(tmp_path / "fresh" / "out").as_posix()
                     for p in (tmp_path / "fresh" / "out").rglob("*") if p.is_file() and not p.name.startswith("."))
    assert written == ["cropped_faces/p_s_00.png", "p_s.jpg", "p_s.json", "p_s_before_after.jpg",
                       "restored_faces/p_s_00.png"]
    assert_rerun_keeps_inputs(make(tmp_path / "rerun"), tmp_path / "rerun", capsys)


# ------------------------------------------------------------------ training runs are never replaced
@pytest.mark.parametrize("existing", ["config.yaml", "final/adapters.safetensors", "checkpoints/step_0000002/x",
                                      "metrics.jsonl"])
def test_train_refuses_an_existing_run_without_resume(existing, tmp_path, monkeypatch, capsys):
    import instantrestore.train as train_package

    def never(*args, **kwargs):
        raise AssertionError("the trainer must not start")
    monkeypatch.setattr(train_package, "train", never)
    run = tmp_path / "run"
    users_file(run / existing)
    (run / "notes.txt").write_text("about this run\n")
    before = digests(run)
    rc, _, err = run_cli(capsys, "train", "--out", run, "--steps", "1")
    assert rc == 2 and "--resume" in err and existing.split("/")[0] in err, err
    assert digests(run) == before


def test_train_starts_in_a_folder_without_a_run_and_resumes_with_resume(tmp_path, monkeypatch, capsys):
    import instantrestore.train as train_package

    calls = []
    monkeypatch.setattr(train_package, "train", lambda config, progress, resume: calls.append(resume) or "final")
    (tmp_path / "notes.txt").write_text("a folder of the user's\n")
    assert run_cli(capsys, "train", "--out", tmp_path, "--steps", "1")[0] == 0
    (tmp_path / "config.yaml").write_text("steps: 1\n")
    assert run_cli(capsys, "train", "--out", tmp_path, "--steps", "1", "--resume")[0] == 0
    assert calls == [False, True]


def test_train_id_refuses_a_network_already_there(tmp_path, monkeypatch, capsys):
    import instantrestore.cli.idnet as idnet_cli

    monkeypatch.setattr(idnet_cli, "train_identity_network", lambda *a, **k: pytest.fail("must not train"))
    users_file(tmp_path / "net" / "model.safetensors")
    before = digests(tmp_path)
    rc, _, err = run_cli(capsys, "train-id", "--out", tmp_path / "net", "--steps", "1")
    assert rc == 2 and "--overwrite" in err and digests(tmp_path) == before


# ------------------------------------------------------------------ single items
def test_save_cache_never_replaces_an_input_or_a_file_of_the_users(micro_weights, tmp_path, capsys):
    args = _restore_aligned(tmp_path, micro_weights / "model")
    cache = args.index("--save-cache") + 1
    before = digests(tmp_path)
    for target, message in ((tmp_path / "refs" / "r.png", "also an input"), (tmp_path / "faces" / "f0.png",
                                                                              "also an input")):
        rc, _, err = run_cli(capsys, *args[:cache], target, *args[cache + 1:], "--overwrite")
        assert rc == 2 and message in err, err
    users_file(tmp_path / "person.refs")
    before = digests(tmp_path)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and "not written by" in err and digests(tmp_path) == before
    (tmp_path / "person.refs").unlink()
    assert run_cli(capsys, *args)[0] == 0  # a cache it wrote is replaced by the next --save-cache
    assert run_cli(capsys, *args)[0] == 0


def test_photo_restore_keeps_the_users_report_and_before_after(micro_weights, tmp_path, capsys):
    args = _restore_photos(tmp_path, micro_weights / "model")
    users_file(tmp_path / "out" / "p.json")
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0 and "no record of restore making them: p.json" in err, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p.json"]  # the photo's files all kept
    (tmp_path / "out" / "p.json").unlink()
    users_file(tmp_path / "out" / "p_before_after.jpg")
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0 and "p_before_after.jpg" in err and not (tmp_path / "out" / "p.png").exists()
    (tmp_path / "out" / "p_before_after.jpg").unlink()
    assert run_cli(capsys, *args)[0] == 0
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0 and "skipping 1 existing" in err  # all three made alike: done


def test_a_before_after_written_before_it_recorded_anything_still_resumes(micro_weights, tmp_path, capsys):
    args = _restore_photos(tmp_path, micro_weights / "model")
    assert run_cli(capsys, *args)[0] == 0
    before_after = tmp_path / "out" / "p_before_after.jpg"
    Image.open(before_after).save(before_after)  # as earlier versions wrote it: no record in the file
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0 and "skipping 1 existing" in err, err


def test_aligned_inputs_differing_only_in_suffix_get_outputs_of_their_own(micro_weights, tmp_path, capsys):
    _noise(tmp_path / "faces" / "x.png", 1)
    _noise(tmp_path / "faces" / "x.jpg", 2)
    _noise(tmp_path / "faces" / "y.png", 3)
    rc, _, err = run_cli(capsys, "restore", tmp_path / "faces", "--aligned", "--out", tmp_path / "out",
                         "--checkpoint", micro_weights / "model", "--verify-refs", "off")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["faces_x_jpg.png", "faces_x_png.png",
                                                                     "faces_y.png"]


def test_refs_out_replaces_its_own_json_only(micro_weights, tmp_path, capsys):
    args = _refs(tmp_path, micro_weights / "model")
    assert run_cli(capsys, *args)[0] == 0
    assert run_cli(capsys, *args)[0] == 0  # its own JSON: replaced
    (tmp_path / "refs.json").write_text('{"input": "my notes"}')  # not all of refs' keys: the user's
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and json.loads((tmp_path / "refs.json").read_text()) == {"input": "my notes"}


@pytest.mark.parametrize("name", ["results.md", "results.json", "grid.png"])
def test_bench_synth_refuses_results_it_did_not_write_before_evaluating(name, tmp_path, monkeypatch, capsys):
    import instantrestore.bench.synth as synth

    monkeypatch.setattr(synth, "evaluate_synth", lambda *a, **k: pytest.fail("must not evaluate"))
    users_file(tmp_path / "out" / name)
    before = digests(tmp_path)
    rc, _, err = run_cli(capsys, "bench", "synth", "--out", tmp_path / "out", "--identities", "1")
    assert rc == 2 and "--overwrite" in err and digests(tmp_path) == before, err
