"""A short tiny run lowers the training loss (stage 2, every tiny-recipe term on)."""
from __future__ import annotations

import pytest

from instantrestore.train import read_metrics, train

from test_train import tiny_config


@pytest.mark.slow
def test_short_run_fits_one_identity(tmp_path):
    # one identity with 2 photos, batch 2: every step sees the same targets (fresh degradations,
    # timesteps and noise), so the reconstruction terms must fall clearly within 12 steps
    config = tiny_config(tmp_path, steps=12, identities=1, images_per_identity=2, refs_max=1, lr=1e-3,
                         log_every=1, save_every=1000, sample_every=1000)
    train(config, progress=False)
    rows = read_metrics(config.out)
    assert [r["step"] for r in rows] == list(range(1, 13))
    rec = [r["l1"] + r["ms_ssim"] for r in rows]
    first, last = sum(rec[:4]) / 4, sum(rec[-4:]) / 4
    assert last < 0.8 * first, (first, last)
    assert rows[-1]["landmark_attention"] < rows[0]["landmark_attention"]
