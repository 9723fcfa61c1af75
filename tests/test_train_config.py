"""TrainConfig: YAML round trip, overrides, refusal of unknown keys, the shipped recipes."""
from __future__ import annotations

from pathlib import Path

import pytest

from instantrestore.losses import LandmarkAttentionConfig, LossWeights
from instantrestore.train import TrainConfig
from instantrestore.train.config import parse_set

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_yaml_roundtrip(tmp_path):
    config = TrainConfig(stage="instantrestore", steps=7, train_timesteps=(249, 749), lr=1e-4,
                         loss=LossWeights(lpips=0.0, l1=1.0, hard_example_lambda=0.6),
                         landmark_attention=LandmarkAttentionConfig(layers=("0",), sigma=2.0, points=(1, 2, 3)))
    path = tmp_path / "c.yaml"
    config.to_yaml(path)
    again = TrainConfig.from_yaml(path)
    assert again == config
    assert again.landmark_attention.points == (1, 2, 3) and again.train_timesteps == (249, 749)


def test_overrides_flat_dotted_and_nested(tmp_path):
    path = tmp_path / "c.yaml"
    TrainConfig().to_yaml(path)
    config = TrainConfig.from_yaml(path, steps=3, **{"loss.lpips": 0.0, "landmark_attention": {"sigma": 0.5}})
    assert config.steps == 3 and config.loss.lpips == 0.0 and config.landmark_attention.sigma == 0.5
    assert config.loss.ms_ssim == LossWeights().ms_ssim  # untouched nested keys keep their values
    assert config.replace(**{"loss.identity": 0.0}).loss.identity == 0.0
    assert parse_set(["loss.l1=1", "data=/x", "train_timesteps=[249]"]) == {"loss.l1": 1, "data": "/x",
                                                                          "train_timesteps": [249]}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set(["steps"])


def test_unknown_keys_are_listed_with_hints(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("stage: prior\nstepz: 3\n")
    with pytest.raises(ValueError, match=r"stepz \(did you mean steps\?\)"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ValueError, match=r"loss\.lpip \(did you mean loss\.lpips\?\)"):
        TrainConfig.from_yaml(None, **{"loss.lpip": 1.0})


def test_invalid_values_fail_clearly():
    with pytest.raises(ValueError, match="stage must be one of"):
        TrainConfig(stage="stage3")
    with pytest.raises(ValueError, match="refs_min <= refs_max"):
        TrainConfig(refs_min=3, refs_max=2)
    with pytest.raises(ValueError, match="landmark_attention must be 0"):
        TrainConfig(stage="prior", loss=LossWeights(landmark_attention=1.0))
    with pytest.raises(ValueError, match="world_style must be one of"):
        TrainConfig(world_style="huge")
    with pytest.raises(ValueError, match="oracle_reference must be in"):
        TrainConfig(oracle_reference=2.0)
    with pytest.raises(ValueError, match="synthetic only"):
        TrainConfig(data="some/folder", oracle_reference=0.5)
    with pytest.raises(ValueError, match="prior_references applies to stage 'prior'"):
        TrainConfig(stage="instantrestore", prior_references=True)


@pytest.mark.parametrize("name", ["sd-turbo.yaml", "tiny-autoencoder.yaml", "tiny-prior.yaml", "tiny.yaml"])
def test_shipped_recipes_parse(name):
    config = TrainConfig.from_yaml(CONFIGS / name)
    stage = {"tiny-autoencoder.yaml": "autoencoder", "tiny-prior.yaml": "prior"}.get(name, "instantrestore")
    assert config.stage == stage
    # stage 0's VAE stays fixed in the tiny prior and stage 2 (the detail ceiling); the paper trains its LoRA
    assert config.freeze_vae == (stage != "autoencoder" and name != "sd-turbo.yaml")
    if name == "sd-turbo.yaml":  # the paper's appendix A; the tiny world's options stay off
        assert (config.world_style, config.oracle_reference, config.prior_references) == ("classic", 0.0, False)
        assert (config.train_noise, config.unet_zero_out, config.attention_locality) == (True, False, None)
        assert config.lr == 5e-4
        assert (config.unet_lora_rank, config.vae_lora_rank, config.steps) == (32, 32, 50000)
        assert config.train_timesteps == (249, 499, 749) and config.adain
        assert config.batch_size * config.grad_accum * 4 == 16  # on the paper's 4 GPUs
        w = config.loss
        assert (w.lpips, w.ms_ssim, w.identity, w.adversarial, w.landmark_attention) == (5.0, 1.0, 1.0, 0.5, 5000.0)
    else:
        assert config.loss.lpips == 0.0 and config.image_size == 128 and config.preset == "sr8"
