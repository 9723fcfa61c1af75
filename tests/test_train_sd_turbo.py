"""One training step on SD-Turbo's real architecture (random weights, 64 px): the LoRA targets,
the frozen reference branch and every loss fit the real model."""
from __future__ import annotations

import pytest
import torch

from instantrestore.train import build
from instantrestore.train.sampling import collate
from instantrestore.train.trainer import _setup, train_step

from test_train import tiny_config


@pytest.mark.slow
def test_one_sd_turbo_training_step(tmp_path):
    config = tiny_config(tmp_path, backbone="sd-turbo", image_size=64, batch_size=1, refs_max=2, refs_min=2,
                         unet_lora_rank=4, vae_lora_rank=4)
    run = _setup(config)
    assert len(run.model.injected_layers) == 9 and len(run.capture) == 9  # LAS on every decoder layer
    ds, train_idx, _ = build.build_dataset(config)
    base = {k: v.clone() for k, v in run.model.base_state_dict().items() if k.startswith("unet.up_blocks.3")}
    lora_before = {k: v.clone() for k, v in run.model.adapter_state_dict().items() if "lora_B" in k}
    terms = train_step(run, [collate([ds[train_idx[0]]])], 0)
    for name in ("loss", "l1", "ms_ssim", "identity", "adversarial", "landmark_attention", "d_loss"):
        assert torch.isfinite(torch.tensor(terms[name])), name
    assert terms["landmark_attention"] > 0
    after = run.model.base_state_dict()
    assert all(torch.equal(v, after[k]) for k, v in base.items())
    lora_after = run.model.adapter_state_dict()
    assert sum(not torch.equal(v, lora_after[k]) for k, v in lora_before.items()) > 100
