"""`instantrestore eval` end to end on a small folder pair."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from instantrestore.cli import main


def _face_like(rng, size=192):
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([200 * xx, 180 * yy, 120 + 60 * np.sin(6 * xx)], -1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    pred, gt, refs, lq = tmp_path / "pred", tmp_path / "gt", tmp_path / "refs", tmp_path / "lq"
    for d in (pred, gt, refs, lq):
        d.mkdir()
    for name in ("a", "b", "c"):
        clean = _face_like(rng)
        Image.fromarray(clean).save(gt / f"{name}.png")
        Image.fromarray(clean[::4, ::4]).save(lq / f"{name}.png")
        noisy = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(pred / f"{name}.jpg", quality=95)  # paired by stem across suffixes
        (refs / name).mkdir()
        Image.fromarray(_face_like(rng)).save(refs / name / "0.png")
    Image.fromarray(_face_like(rng)).save(pred / "orphan.png")
    Image.fromarray(_face_like(rng)).save(gt / "lonely.png")
    return pred, gt, refs, lq


def test_eval_writes_four_outputs_and_lists_unpaired(folders, tmp_path, capsys):
    pred, gt, refs, lq = folders
    out = tmp_path / "report"
    code = main(["eval", "--pred", str(pred), "--gt", str(gt), "--refs", str(refs), "--lq", str(lq), "--out", str(out),
                 "--metrics", "psnr,ssim,ms_ssim,lpips,ids,ids_ref,l2_ld,ald_e,ald_m,fid", "--grid", "2", "--label", "noisy"])
    assert code == 0
    for name in ("per_image.csv", "summary.json", "table.md", "grid.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert 25 < float(rows[0]["psnr"]) < 40 and 0 < float(rows[0]["ssim"]) < 1
    assert rows[0]["ref"] == "0.png" and -1 <= float(rows[0]["ids_ref"]) <= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unpaired"] == {"pred_only": ["orphan.png"], "gt_only": ["lonely.png"], "ambiguous": []}
    assert summary["n_pairs"] == 3 and summary["n_measured"] == 3
    assert summary["metrics"]["psnr"]["n"] == 3
    stats = summary["metrics"]["ssim"]
    values = [float(r["ssim"]) for r in rows]
    assert stats["mean"] == pytest.approx(np.mean(values), abs=1e-4)
    assert "Inception" in summary["skipped"]["fid"] and "fid" not in rows[0]
    assert "fid skipped" in (out / "table.md").read_text() and "ArcFace" in (out / "table.md").read_text()
    if "lpips" in summary["skipped"]:
        assert "lpips" not in rows[0] and summary["skipped"]["lpips"]
    table = (out / "table.md").read_text()
    assert "| noisy |" in table and "PSNR↑" in table and " ± " in table
    assert "orphan.png" in table and "lonely.png" in table
    grid = Image.open(out / "grid.png")
    assert grid.width == 5 * 192 and grid.height == 28 + 2 * 192  # input, output, gt, 2 references
    assert "orphan.png" in capsys.readouterr().out


def test_eval_reports_size_mismatch_and_refuses_input_as_output(folders, tmp_path):
    pred, gt, _, _ = folders
    Image.new("RGB", (100, 100)).save(pred / "lonely.png")
    out = tmp_path / "r2"
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--metrics", "psnr"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [p["name"] for p in summary["problems"]] == ["lonely"]
    assert "size differs" in (out / "table.md").read_text()
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(gt), "--metrics", "psnr"]) == 2
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--metrics", "musiq"]) == 2


def test_eval_timings_column(folders, tmp_path):
    pred, gt, _, _ = folders
    timings = tmp_path / "t.csv"
    timings.write_text("name,seconds\na.jpg,0.5\nb,1.5\n")
    out = tmp_path / "r3"
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--metrics", "psnr",
                 "--timings", str(timings)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["seconds"]["mean"] == pytest.approx(1.0)
    assert "s/image" in (out / "table.md").read_text()


class _MeanColour(torch.nn.Module):
    def forward(self, x):  # [B, 3, 112, 112] -> [B, 3]
        return x.mean(dim=(2, 3)) + 2.0


def test_eval_accepts_a_user_embedder(folders, tmp_path):
    pred, gt, refs, _ = folders
    path = tmp_path / "embedder.pt2"
    batch = {"x": {0: torch.export.Dim("batch")}}
    torch.export.save(torch.export.export(_MeanColour(), (torch.zeros(2, 3, 112, 112),), dynamic_shapes=batch),
                      str(path))
    out = tmp_path / "r4"
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--refs", str(refs), "--out", str(out),
                 "--metrics", "ids,ids_ref", "--embedder", f"torch:{path}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["embedder"]["name"] == "torch:embedder.pt2"
    assert summary["metrics"]["ids"]["mean"] > 0.99  # mean colours of a noisy copy barely move
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--metrics", "ids",
                 "--embedder", "nonsense"]) == 2


def _faces_128(realfaces_dir, root):
    """pred/ and gt/: two real aligned faces at the tiny model's 128 px, the prediction a blurred copy."""
    from PIL import ImageFilter

    for folder in ("pred", "gt"):
        (root / folder).mkdir()
    for i, path in enumerate(sorted((realfaces_dir / "obama" / "aligned_references").glob("*.png"))[:2]):
        face = Image.open(path).convert("RGB").resize((128, 128), Image.LANCZOS)
        face.save(root / "gt" / f"{i}.png")
        face.filter(ImageFilter.GaussianBlur(1)).save(root / "pred" / f"{i}.png")


def test_eval_default_metrics_measure_the_tiny_models_128px_faces(realfaces_dir, tmp_path, capsys):
    """MS-SSIM needs more than 160 px: at 128 px it alone is skipped, saying why; every other default
    metric is measured (before, its error left every image unmeasured)."""
    _faces_128(realfaces_dir, tmp_path)
    rc = main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "r")])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert rc == 0 and summary["n_measured"] == 2, capsys.readouterr()
    assert "160 px" in summary["skipped"]["ms_ssim"] and "ms_ssim" not in summary["metrics"]
    for name in ("psnr", "ssim", "ids", "l2_ld", "ald_e", "ald_m"):
        assert summary["metrics"][name]["n"] == 2, (name, summary)
    assert "ms_ssim skipped" in (tmp_path / "r" / "table.md").read_text()
