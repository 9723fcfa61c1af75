"""pipeline/folder_jobs.py: planning outputs, telling done / other / foreign apart, provenance."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from instantrestore.pipeline import folder_jobs as fj
from instantrestore.utils.images import read_provenance, read_recorded_settings, save_image

MADE = {"command": "test", "preset": {"blur": (0.5, 2.0), "name": "x"}, "seed": 3, "input": "a/b.png"}


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def test_provenance_round_trips_through_the_image(tmp_path):
    for name in ("out.png", "out.jpg"):
        path = tmp_path / name
        fj.write_image(_image(), path, MADE)
        assert read_provenance(path) == fj.provenance_text(MADE)  # sorted-key JSON, as outputs made before
        recorded = read_recorded_settings(path)
        assert recorded == fj.as_recorded(MADE) and recorded["preset"]["blur"] == [0.5, 2.0]  # tuples read as lists
        assert fj.classify(path, MADE) == fj.DONE


def test_write_image_without_provenance_records_nothing(tmp_path):
    fj.write_image(Image.fromarray(_image()), tmp_path / "a.png")
    Image.fromarray(_image()).save(tmp_path / "b.png")
    assert read_provenance(tmp_path / "a.png") is None
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_classify_done_other_foreign_todo(tmp_path):
    done, other, foreign, absent = (tmp_path / f"{n}.png" for n in ("done", "other", "foreign", "absent"))
    fj.write_image(_image(), done, MADE)
    fj.write_image(_image(), other, {**MADE, "seed": 4})
    Image.fromarray(_image()).save(foreign)  # not written by a job
    assert fj.classify(done, MADE) == fj.DONE
    assert fj.classify(other, MADE) == fj.OTHER
    assert fj.classify(foreign, MADE) == fj.FOREIGN
    assert fj.classify(absent, MADE) == fj.TODO
    assert fj.classify(done, MADE, complete=False) == fj.TODO  # made alike, but the job's other files are missing
    assert fj.classify(other, MADE, complete=False) == fj.OTHER  # still not this job's to replace
    for path in (done, other, foreign):
        assert fj.classify(path, MADE, overwrite=True) == fj.TODO
    (tmp_path / "record.json").write_text("{}")
    assert fj.classify(tmp_path / "record.json", MADE, read=lambda p: {"seed": 3}) == fj.OTHER


def test_plan_outputs_sorts_items_and_words_the_kept_ones(tmp_path):
    items = [("a", tmp_path / "a.png"), ("b", tmp_path / "b.png"), ("c", tmp_path / "c.png"), ("d", tmp_path / "d.png")]
    made = [{**MADE, "input": name} for name, _ in items]
    fj.write_image(_image(), tmp_path / "a.png", made[0])
    fj.write_image(_image(), tmp_path / "b.png", made[0])  # another input's provenance
    save_image(Image.fromarray(_image()), tmp_path / "c.png")
    plan = fj.plan_outputs(items, made, path=lambda item: item[1])
    assert plan.done == [items[0]] and plan.other == [items[1]] and plan.foreign == [items[2]]
    assert plan.todo == [(items[3], made[3])] and plan.kept == 3
    assert plan.kept_lines("test", "made otherwise") == [
        "warning: kept 1 existing output(s) made otherwise: b.png; pass --overwrite to redo them",
        "warning: kept 1 existing file(s) with no record of test making them: c.png; pass --overwrite to replace them"]
    redo = fj.plan_outputs(items, made, path=lambda item: item[1], complete=lambda item: item[0] != "a")
    assert redo.done == [] and redo.todo[0] == (items[0], made[0])
    every = fj.plan_outputs(items, made, path=lambda item: item[1], overwrite=True)
    assert [item for item, _ in every.todo] == items and every.kept == 0
    with pytest.raises(ValueError):
        fj.plan_outputs(items, made[:2], path=lambda item: item[1])


def test_kept_lines_list_at_most_five_names():
    names = [f"{i}.png" for i in range(7)]
    line, = fj.kept_lines("degrade", names, [], "made with another seed")
    assert "kept 7 existing output(s)" in line and "4.png ..." in line and "5.png" not in line
    assert fj.kept_lines("degrade", [], [], "x") == []
    assert fj.skipped_line(2, " [process 1/2]") == ("skipping 2 existing outputs [process 1/2] "
                                                    "(use --overwrite to redo them)")


def test_expand_inputs(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "empty").mkdir()
    for name in ("b.png", "a.jpg", ".hidden.png", "notes.txt"):
        (tmp_path / "f" / name).write_bytes(b"")
    assert fj.expand_inputs([tmp_path / "f", tmp_path / "f" / "notes.txt"]) == [
        tmp_path / "f" / "a.jpg", tmp_path / "f" / "b.png", tmp_path / "f" / "notes.txt"]
    with pytest.raises(FileNotFoundError, match="folder has no images"):
        fj.expand_inputs([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        fj.expand_inputs([tmp_path / "missing.png"])


def test_output_stems_tell_clashing_inputs_apart(tmp_path):
    inputs = [tmp_path / "a" / "x.jpg", tmp_path / "a" / "x.png", tmp_path / "b" / "y.jpg"]
    by_suffix = lambda p: f"{p.stem}_{p.suffix.lstrip('.')}"  # noqa: E731
    assert fj.output_stems(inputs, by_suffix) == ["x_jpg", "x_png", "y"]
    assert fj.output_stems(inputs, lambda p: f"{p.parent.name}_{p.stem}_{p.suffix[1:]}", rename_all=True) == [
        "a_x_jpg", "a_x_png", "b_y_jpg"]
    assert fj.output_stems(inputs[1:], by_suffix, rename_all=True) == ["x", "y"]  # nothing clashes: names kept
    with pytest.raises(ValueError, match="same output: a_x"):
        fj.output_stems(inputs, lambda p: f"{p.parent.name}_{p.stem}")


def test_side_files_are_judged_like_the_output(tmp_path):
    made = {"model": "m", "input": "a.png"}
    image, report = tmp_path / "a.png", tmp_path / "a.json"
    fj.write_image(np.zeros((4, 4, 3), np.uint8), image, made)
    read = lambda p: json.loads(p.read_text()).get("provenance")  # noqa: E731
    side = lambda item: [(report, read)]  # noqa: E731
    assert fj.plan_outputs(["a"], [made], path=lambda _: image, side=side).todo  # the report is missing: redo
    report.write_text(json.dumps({"provenance": made}))
    assert fj.plan_outputs(["a"], [made], path=lambda _: image, side=side).done == ["a"]
    report.write_text(json.dumps({"provenance": {**made, "model": "other"}}))
    assert fj.plan_outputs(["a"], [made], path=lambda _: image, side=side).names(fj.OTHER) == ["a.json"]
    report.write_text(json.dumps({"mine": 1}))  # the user's: the whole item is kept, the file named
    plan = fj.plan_outputs(["a"], [made], path=lambda _: image, side=side)
    assert plan.foreign == ["a"] and plan.names(fj.FOREIGN) == ["a.json"]
    assert fj.plan_outputs(["a"], [made], path=lambda _: image, side=side, overwrite=True).todo
