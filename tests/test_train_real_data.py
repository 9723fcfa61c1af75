"""A real identity dataset end to end, as docs/training.md walks through it: `prepare-data` on a
copy of CelebRef-HQ people, a few `train` steps of the tiny backbone with every default loss
term that needs no downloaded weights (LAS, MS-SSIM, GAN), `--resume`, then `restore` with
the result. Skipped where the real photos are absent."""
from __future__ import annotations

import math
import shutil

import pytest
from PIL import Image

from instantrestore.cli import main
from instantrestore.train import read_metrics

PEOPLE, PER_PERSON = 3, 5


@pytest.mark.slow
def test_prepare_train_resume_and_restore_on_real_people(realfaces_dir, tmp_path, capsys):
    data, run, restored = tmp_path / "celebref", tmp_path / "run", tmp_path / "restored.png"
    sources = sorted((realfaces_dir / "celebref").iterdir())[:PEOPLE]
    for person in sources:
        for path in sorted((person / "references").glob("*.png"))[:PER_PERSON]:
            (data / person.name / "references").mkdir(parents=True, exist_ok=True)
            shutil.copy(path, data / person.name / "references" / path.name)
    assert main(["prepare-data", str(data), "--no-progress"]) == 0
    assert f"{PEOPLE * PER_PERSON} usable, 0 left out" in capsys.readouterr().out

    args = ["train", "--backbone", "tiny", "--data", str(data), "--out", str(run), "--batch-size", "2",
            "--image-size", "64", "--refs-max", "2", "--set", "loss.identity=0", "--set", "loss.lpips=0",
            "--set", "val_identities=1", "--set", "save_every=2", "--set", "log_every=1", "--no-progress"]
    assert main([*args, "--steps", "3"]) == 0
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for row in rows:
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float)), row
        assert row["landmark_attention"] > 0 and row["las_queries"] > 0 and row["las_samples"] >= 1
        assert row["adversarial"] > 0 and row["ms_ssim"] > 0
    assert (run / "checkpoints" / "step_0000004" / "adapters.safetensors").is_file()
    assert (run / "held_out.txt").read_text().split() == [sources[-1].name]

    held_out = sources[-1]
    degraded = next(held_out.glob("degraded_*.png"))
    refs = [str(p) for p in sorted((data / held_out.name / "references").glob("*.png"))[:2]]
    assert main(["restore", str(degraded), "--refs", *refs, "--out", str(restored), "--checkpoint",
                 str(run / "final"), "--device", "cpu"]) == 0
    assert Image.open(restored).size == (64, 64)  # the crop at the model's size
