"""The trainer on the tiny backbone: the trained set, exact resume, logs, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from instantrestore.utils.tensor_io import load_tensors
from instantrestore.generator.model import InstantRestore
from instantrestore.train import TrainConfig, read_metrics, train
from instantrestore.train import build
from instantrestore.train.trainer import _setup, train_step
from instantrestore.train.sampling import collate


def identity_network_dir(root: Path) -> Path:
    """A small random identity network saved the way `instantrestore train-id` saves one."""
    from instantrestore.idnet.networks import IdentityNetwork, build_identity_network, save_identity_network

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = IdentityNetwork(build_identity_network("cnn-a", embedding_dim=16, input_size=16), "cnn-a", 16, 16)
    out = root / "idnet"
    save_identity_network(net, out)
    return out


def tiny_config(tmp_path: Path, **changes) -> TrainConfig:
    """48 px (MS-SSIM needs > 32), batch 2, every loss term the tiny recipe uses (LAS on, tiny ID net and discriminator)."""
    base = dict(stage="instantrestore", image_size=48, batch_size=2, refs_max=2, identities=3, images_per_identity=3,
                val_identities=1, val_batch=2, steps=2, save_every=100, log_every=1, sample_every=100,
                out=str(tmp_path / "run"), identity_network=str(identity_network_dir(tmp_path)),
                loss=dict(lpips=0.0, l1=1.0, ms_ssim=1.0, identity=1.0, adversarial=0.5, landmark_attention=5000.0))
    base.update(changes)
    return TrainConfig.from_dict(base)


def _state(model: InstantRestore) -> dict[str, torch.Tensor]:
    return {**{f"base/{k}": v.detach().clone() for k, v in model.base_state_dict().items()},
            **{f"adapter/{k}": v.detach().clone() for k, v in model.adapter_state_dict().items()}}


@pytest.mark.slow
def test_stage2_gradients_reach_only_lora_and_conv_in(tmp_path):
    config = tiny_config(tmp_path)
    run = _setup(config)
    ds, train_idx, _ = build.build_dataset(config)
    before = _state(run.model)
    idnet_before = [p.detach().clone() for p in run.loss.identity.parameters()] if hasattr(run.loss, "identity") else []
    terms = train_step(run, [collate([ds[i] for i in train_idx[:2]])], 0)
    for name in ("loss", "l1", "ms_ssim", "identity", "adversarial", "landmark_attention", "d_loss"):
        assert name in terms, name
    trainable = {id(p) for p in run.model.trainable_parameters()}
    names = [n for n, p in run.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or "modules_to_save" in n for n in names)
    assert all(id(p) in trainable for p in run.params)
    after = _state(run.model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("adapter/") for k in changed)  # the frozen base (= reference branch) is untouched
    assert any("conv_in" in k for k in changed) and any("lora_B" in k for k in changed)
    for p0, p1 in zip(idnet_before, run.loss.identity.parameters()):
        assert torch.equal(p0, p1)


@pytest.mark.slow
def test_prior_stage_trains_the_base_and_saves_a_prior(tmp_path):
    config = tiny_config(tmp_path, stage="prior", steps=1, **{"loss.landmark_attention": 0.0})
    start = build.build_model(config)
    final = train(config, progress=False)
    prior = InstantRestore.from_pretrained(final)
    base0, base1 = start.base_state_dict(), prior.base_state_dict()
    assert any(not torch.equal(base0[k], base1[k]) for k in base0 if k.startswith("unet."))
    assert any(not torch.equal(base0[k], base1[k]) for k in base0 if k.startswith("vae."))
    adapters0, adapters1 = start.adapter_state_dict(), prior.adapter_state_dict()
    lora = [k for k in adapters0 if "lora_" in k]
    assert lora and all(torch.equal(adapters0[k], adapters1[k]) for k in lora)  # adapters stay fresh
    copy = [k for k in adapters1 if "modules_to_save" in k and k.endswith("weight")][0]
    assert torch.equal(adapters1[copy], base1["vae.encoder.conv_in.weight"])  # conv_in copy starts from the prior
    # stage 2 from that prior keeps its base weights
    stage2 = build.build_model(tiny_config(tmp_path, init_from=str(final)))
    assert all(torch.equal(v, stage2.base_state_dict()[k]) for k, v in base1.items())


@pytest.mark.slow
def test_autoencoder_stage_trains_only_the_vae_and_fits_a_unit_latent_scale(tmp_path):
    config = tiny_config(tmp_path, stage="autoencoder", steps=1, **{"loss.landmark_attention": 0.0,
                                                                    "loss.identity": 0.0, "loss.adversarial": 0.0})
    start = build.build_model(config)
    final = train(config, progress=False)
    model = InstantRestore.from_pretrained(final)
    base0, base1 = start.base_state_dict(), model.base_state_dict()
    assert all(torch.equal(base0[k], base1[k]) for k in base0 if k.startswith("unet."))
    assert any(not torch.equal(base0[k], base1[k]) for k in base0 if k.startswith("vae."))
    scale = model.config.vae["scaling_factor"]
    assert scale != start.config.vae["scaling_factor"]
    # the scale was fitted on training photos: their latents come out with unit RMS
    from instantrestore.train.stages import scale_batch
    images = scale_batch(*build.build_dataset(config)[:2])
    with torch.no_grad():
        rms = float(model.encode_latents(images).pow(2).mean().sqrt())
    assert rms == pytest.approx(1.0, rel=1e-3)


def test_prior_with_frozen_vae_trains_only_the_unet(tmp_path):
    config = tiny_config(tmp_path, stage="prior", steps=1, freeze_vae=True, **{"loss.landmark_attention": 0.0})
    start = build.build_model(config)
    prior = InstantRestore.from_pretrained(train(config, progress=False))
    base0, base1 = start.base_state_dict(), prior.base_state_dict()
    assert all(torch.equal(base0[k], base1[k]) for k in base0 if k.startswith("vae."))
    assert any(not torch.equal(base0[k], base1[k]) for k in base0 if k.startswith("unet."))


def test_prior_with_references_reads_them_through_concat_attention(tmp_path):
    """prior_references: the prior's decoder self-attention also sees the references ("concat"),
    so they change its output and their gradient reaches the base UNet; off, they change nothing."""
    from instantrestore.train.stages import STAGES, Prior

    config = tiny_config(tmp_path, stage="prior", prior_references=True, oracle_reference=1.0,
                         **{"loss.landmark_attention": 0.0})
    stage = STAGES["prior"].from_config(config)
    assert isinstance(stage, Prior) and stage.with_references
    assert not STAGES["prior"].from_config(config.replace(prior_references=False)).with_references
    model = build.build_model(config)
    ds, train_idx, _ = build.build_dataset(config)
    batch = collate([ds[i] for i in train_idx[:2]])
    other = {**batch, "refs": batch["refs"].flip(0), "ref_mask": batch["ref_mask"].flip(0)}
    t = torch.full((2,), 499)
    with torch.no_grad():
        a, b = (stage.sample(model, x) for x in (batch, other))
        blind = (Prior().sample(model, x) for x in (batch, other))
    assert (a - b).abs().max() > 1e-4
    assert torch.equal(*blind)
    stage.set_trainable(model, freeze_vae=True)
    stage.forward(model, batch, t, torch.zeros(2, 4, 12, 12), []).image.mean().backward()
    grads = [p.grad for n, p in model.unet.named_parameters() if "attn1.to_q" in n and "lora" not in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert stage.grid_references(batch) is batch["refs"]


def test_prior_with_references_takes_the_landmark_attention_loss(tmp_path):
    """A blind prior may not ask for LAS (nothing to supervise); with prior_references it captures
    the injected layers and the loss term is logged."""
    with pytest.raises(ValueError, match="blind"):
        tiny_config(tmp_path, stage="prior")
    config = tiny_config(tmp_path, stage="prior", prior_references=True, oracle_reference=1.0, steps=1,
                         **{"loss.identity": 0.0, "loss.adversarial": 0.0, "landmark_attention.form": "ce",
                            "loss.landmark_attention": 0.5})
    run = _setup(config)
    assert run.capture == run.model.injected_layers
    train(config, progress=False)
    (row,) = read_metrics(Path(config.out))
    assert row["landmark_attention"] > 0


def test_zero_unet_output_starts_from_the_vae_round_trip(tmp_path):
    """unet_zero_out: eps = 0, so the untrained generator returns its input's VAE round trip."""
    config = tiny_config(tmp_path, stage="prior", unet_zero_out=True, **{"loss.landmark_attention": 0.0})
    model = build.build_model(config).eval()
    lq = torch.rand(1, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(lq).image, model.autoencode(lq).clamp(-1, 1), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(build.build_model(config.replace(unet_zero_out=False))(lq).image,
                                  model.autoencode(lq).clamp(-1, 1), atol=1e-3)


def test_train_noise_off_trains_on_the_inference_path(tmp_path, monkeypatch):
    """train_noise=False: the generator sees zero latent noise (same random stream either way)."""
    from instantrestore.train import trainer

    seen = []
    config = tiny_config(tmp_path, stage="prior", train_noise=False, **{"loss.landmark_attention": 0.0})
    run = _setup(config)
    monkeypatch.setattr(run.stage, "forward", lambda model, batch, t, noise, capture: seen.append(noise))
    ds, train_idx, _ = build.build_dataset(config)
    batch = collate([ds[i] for i in train_idx[:2]])
    trainer.generator_forward(run, batch, torch.Generator().manual_seed(0))
    run_noisy = _setup(config.replace(train_noise=True))
    monkeypatch.setattr(run_noisy.stage, "forward", lambda model, batch, t, noise, capture: seen.append(noise))
    trainer.generator_forward(run_noisy, batch, torch.Generator().manual_seed(0))
    assert torch.equal(seen[0], torch.zeros_like(seen[0])) and seen[1].abs().sum() > 0


def test_attention_locality_reaches_the_saved_model(tmp_path):
    config = tiny_config(tmp_path, attention_locality=0.05, steps=1)
    assert build.build_model(config).config.attention_locality == 0.05
    assert InstantRestore.from_pretrained(train(config, progress=False)).config.attention_locality == 0.05


# What each registered stage trains, as (module, adapter) groups of the model's parameters.
# A new stage adds its rows here.
TRAINED_GROUPS = {
    ("autoencoder", False): {("vae", False)},
    ("prior", False): {("unet", False), ("vae", False)},
    ("prior", True): {("unet", False)},
    ("instantrestore", False): {("unet", True), ("vae", True)},
    ("instantrestore", True): {("unet", True)},  # freeze_vae: the UNet's LoRA only
}


def test_every_stage_trains_exactly_its_groups(tmp_path):
    from instantrestore.generator.adapters import is_adapter_param
    from instantrestore.train.stages import STAGES, stage_for

    assert {name for name, _ in TRAINED_GROUPS} == set(STAGES)
    assert all(cls.name == name for name, cls in STAGES.items())
    model = build.build_model(tiny_config(tmp_path))
    for (name, freeze_vae), groups in TRAINED_GROUPS.items():  # one model: each stage must reset every flag
        params = stage_for(name).set_trainable(model, freeze_vae=freeze_vae)
        on = {n for n, p in model.named_parameters() if p.requires_grad}
        trained = {(n.split(".")[0], is_adapter_param(n)) for n in on}
        assert trained == groups, (name, freeze_vae)
        # every parameter of a trained group trains, and the optimiser gets exactly those, once
        assert on == {n for n, _ in model.named_parameters() if (n.split(".")[0], is_adapter_param(n)) in groups}
        assert len({id(p) for p in params}) == len(params) == len(on)
        assert {id(p) for p in params} == {id(p) for p in model.parameters() if p.requires_grad}
    with pytest.raises(ValueError, match="trains only the VAE"):
        TrainConfig.from_dict({"stage": "autoencoder", "freeze_vae": True, "loss.landmark_attention": 0})


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(tmp_path):
    full = tiny_config(tmp_path, steps=3, save_every=1, out=str(tmp_path / "full"))
    train(full, progress=False)
    killed = full.replace(out=str(tmp_path / "killed"), save_every=2)
    survived = train(killed, progress=False, stop_at=2)  # killed after step 2's checkpoint
    assert survived.name == "step_0000002" and not (tmp_path / "killed" / "final").exists()
    train(killed, progress=False, resume=True)
    a = load_tensors(tmp_path / "full" / "final" / "adapters.safetensors")
    b = load_tensors(tmp_path / "killed" / "final" / "adapters.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = "checkpoints/step_0000003/training_state"
    for name in ("discriminator.safetensors", "optimizer.safetensors"):
        da, db = load_tensors(tmp_path / "full" / state / name), load_tensors(tmp_path / "killed" / state / name)
        assert all(torch.equal(da[k], db[k]) for k in da), name
    rows_a, rows_b = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "killed")
    assert [r["step"] for r in rows_b] == [1, 2, 3]
    for ra, rb in zip(rows_a, rows_b):
        assert ra["loss"] == rb["loss"]


@pytest.mark.slow
def test_resume_with_a_new_learning_rate_uses_it(tmp_path, caplog):
    """The optimiser state holds the old lr; a resumed run must train at the one it is given."""
    import json

    config = tiny_config(tmp_path, steps=2, save_every=1, out=str(tmp_path / "run"), lr=1e-3)
    train(config, progress=False, stop_at=1)
    with caplog.at_level("WARNING", logger="instantrestore.train.trainer"):
        train(config.replace(lr=2.5e-4), progress=False, resume=True)
    assert "optimizer lr changed (saved [0.001], now 0.00025)" in caplog.text
    groups = json.loads((tmp_path / "run" / "checkpoints" / "step_0000002" / "training_state" / "optimizer.json")
                        .read_text())["param_groups"]
    assert {g["lr"] for g in groups} == {2.5e-4}


@pytest.mark.slow
def test_lr_schedule_is_applied_logged_and_resumed_without_warning(tmp_path, caplog):
    config = tiny_config(tmp_path, steps=3, save_every=1, lr=1e-3, lr_schedule="linear", lr_final_ratio=0.5)
    train(config, progress=False, stop_at=1)
    with caplog.at_level("WARNING", logger="instantrestore.train.trainer"):
        train(config, progress=False, resume=True)
    assert "changed" not in caplog.text  # the restored rate is the schedule's, not a change
    assert [row["lr"] for row in read_metrics(tmp_path / "run")] == pytest.approx([1e-3, 7.5e-4, 5e-4])


@pytest.mark.slow
def test_run_folder_and_metrics_have_every_term(tmp_path):
    config = tiny_config(tmp_path, steps=2, save_every=1, keep_checkpoints=1, sample_every=2)
    final = train(config, progress=False)
    out = Path(config.out)
    assert final == out / "final" and (final / "config.json").is_file()
    assert TrainConfig.from_yaml(out / "config.yaml") == config
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_0000002"]  # keep_checkpoints=1
    trainer = json.loads((out / "checkpoints/step_0000002/training_state/trainer.json").read_text())
    assert trainer["step"] == 2 and trainer["samples_seen"] == 4
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("loss", "l1", "ms_ssim", "identity", "adversarial", "landmark_attention", "d_loss", "lr",
                "sec_per_step", "grad_norm"):
        assert all(key in r for r in rows), key
    from PIL import Image

    grid = Image.open(out / "samples" / "step_0000002.png")
    # rows: input, output, ground truth, 2 reference slots; columns: the 2 validation samples
    assert grid.size == (2 * 50 + 2, 5 * 50 + 2)
    InstantRestore.from_pretrained(final)


def test_cli_train_runs_and_resumes(tmp_path, capsys):
    from instantrestore.cli import main

    config = tiny_config(tmp_path, steps=1)
    path = tmp_path / "c.yaml"
    config.to_yaml(path)
    out = tmp_path / "cli-run"
    assert main(["train", "--config", str(path), "--out", str(out), "--no-progress", "--set", "seed=3"]) == 0
    assert (out / "final" / "adapters.safetensors").is_file()
    assert TrainConfig.from_yaml(out / "config.yaml").seed == 3
    assert main(["train", "--out", str(out), "--no-progress", "--resume"]) == 0  # reads OUT/config.yaml
    assert main(["train", "--config", str(path), "--set", "loss.lpip=1"]) == 2
    assert "did you mean loss.lpips" in capsys.readouterr().err


def test_missing_identity_network_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs identity_network"):
        train(tiny_config(tmp_path, identity_network=None), progress=False)


def test_metrics_logger_tensorboard_is_optional_and_resume_trims(tmp_path, caplog):
    import importlib.util
    import logging

    from instantrestore.train.reporting import MetricsLogger

    with caplog.at_level(logging.INFO):
        logger = MetricsLogger(tmp_path, tensorboard=True)
        logger.log(1, {"loss": 1.0})
        logger.log(2, {"loss": torch.tensor(0.5)})
        logger.close()
    if importlib.util.find_spec("tensorboard") is None:
        assert "pip install tensorboard" in caplog.text
    else:
        assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}]
    MetricsLogger(tmp_path, resume_step=1, tensorboard=False).close()  # a run resumed at step 1
    assert [r["step"] for r in read_metrics(tmp_path)] == [1]


@pytest.mark.slow
def test_gradient_checkpointing_and_bf16_steps(tmp_path):
    ds = None
    results = {}
    for name, changes in (("plain", {}), ("checkpointing", {"gradient_checkpointing": True}),
                          ("bf16", {"mixed_precision": "bf16"})):
        config = tiny_config(tmp_path, **changes)
        run = _setup(config)  # one process may set up runs with different precisions in turn
        if ds is None:
            ds, train_idx, _ = build.build_dataset(config)
            batch = collate([ds[i] for i in train_idx[:2]])
        terms = train_step(run, [batch], 0)
        assert all(torch.isfinite(torch.tensor(v)) for v in terms.values()), name
        results[name] = (terms, run.model.adapter_state_dict())
    plain, ckpt = results["plain"], results["checkpointing"]
    assert plain[0]["loss"] == ckpt[0]["loss"]  # recomputation changes nothing
    assert all(torch.equal(plain[1][k], ckpt[1][k]) for k in plain[1])
    assert results["bf16"][0]["loss"] == pytest.approx(plain[0]["loss"], rel=1e-2)
