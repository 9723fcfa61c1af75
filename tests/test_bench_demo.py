"""`instantrestore demo` on random tiny weights: writes grid.png + metrics.json with the documented keys."""
from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from instantrestore.cli import main

SIZE = 64  # conftest.MICRO_SIZE: the micro weights' image size
KEYS = ("id_sim_blind", "id_sim_refs", "psnr_blind", "psnr_refs", "marks_present_blind", "marks_present_refs")


@pytest.fixture(scope="module")
def weights(micro_weights):
    return micro_weights


def test_demo_writes_grid_and_metrics(weights, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--checkpoint", str(weights / "model"), "--eval-network",
                 str(weights / "eval_net_cnn"), "--identity", "3", "--refs", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in KEYS:
        assert math.isfinite(metrics[key]), key
    assert -1 <= metrics["id_sim_blind"] <= 1 + 1e-5 and -1 <= metrics["id_sim_refs"] <= 1 + 1e-5
    assert 0 <= metrics["marks_present_refs"] <= 1 and metrics["refs"] == 2 and metrics["identity"] == 3
    grid = Image.open(out / "grid.png")
    assert grid.width >= 6 * SIZE and grid.height > 3 * SIZE  # 4 columns + 2 references; + marks and eyes zoomed
    printed = capsys.readouterr().out
    assert "identity similarity" in printed and "grid.png" in printed
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_demo_is_deterministic_and_refuses_bad_arguments(weights, tmp_path):
    args = ["--checkpoint", str(weights / "model"), "--eval-network", str(weights / "eval_net_cnn"), "--refs", "1"]
    assert main(["demo", "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["demo", "--out", str(tmp_path / "b"), *args]) == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a["id_sim_refs"] == b["id_sim_refs"] and a["psnr_blind"] == b["psnr_blind"]
    assert main(["demo", "--out", str(tmp_path / "c"), *args[:4], "--refs", "5"]) == 2
    assert main(["demo", "--out", str(weights / "model"), *args]) == 2  # never into an input


def test_detail_boxes_hold_the_marks_and_eyes_and_zoom_keeps_pixels():
    import numpy as np

    from instantrestore.bench.cases import make_case
    from instantrestore.bench.demo import detail_boxes, zoom

    case = make_case(1000, 0, 1, 128, style="detail")
    boxes = detail_boxes(case)
    assert len(boxes) == 2
    for (x0, y0, side), points in zip(boxes, (case.marks, case.eye_centers)):
        assert 0 <= x0 and 0 <= y0 and x0 + side <= 128 and y0 + side <= 128
        assert ((points >= [x0, y0]) & (points <= [x0 + side, y0 + side])).all()
    big = zoom(case.hq, boxes[0])
    assert big.shape == case.hq.shape
    x0, y0, side = boxes[0]
    assert set(map(tuple, big.reshape(-1, 3))) <= set(map(tuple, case.hq[y0:y0 + side, x0:x0 + side].reshape(-1, 3)))
    assert np.array_equal(big[0, 0], case.hq[y0, x0])
