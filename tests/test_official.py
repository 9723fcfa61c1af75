"""The authors' checkpoint formats and the ``official`` inference profile, on micro weights.

The checkpoints are written here in the layout their code saves (see docs/model.md "Official
checkpoints"): a training checkpoint (bf16 / fp16 / fp32, single-process and DDP key prefixes) and
a ``save_model`` adapter file. Parity with their code itself is checked outside the test suite
(docs/model.md, "Parity with the authors' code").
"""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from instantrestore import InstantRestore
from instantrestore.generator.config import TINY_UNET, TINY_VAE, official_config
from instantrestore.generator.noise import NOISE_NAMES
from instantrestore.official import OfficialCheckpointError, convert_official, read_official

SIZE = 64
MICRO_UNET = {**TINY_UNET, "block_out_channels": [16, 32, 32], "attention_head_dim": [1, 2, 2], "cross_attention_dim": 16}
MICRO_VAE = {**TINY_VAE, "block_out_channels": [16, 32, 32], "scaling_factor": 0.18215}
ARCH = dict(unet=MICRO_UNET, vae=MICRO_VAE, image_size=SIZE)


def official_micro_model(seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> InstantRestore:
    """A random official-profile model with non-zero LoRA and a trained conv_in, its weights rounded
    to ``dtype`` (as a checkpoint saved in that precision holds them)."""
    model = InstantRestore.from_config(official_config(unet_lora_rank=4, vae_lora_rank=4, backbone="custom", **ARCH),
                                       seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        for p in model.parameters():
            p.copy_(p.to(dtype).float())
    return model.eval()


def micro_text_encoder_state(hidden: int = 16) -> dict[str, torch.Tensor]:
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=1, max_position_embeddings=77, hidden_act="gelu", projection_dim=hidden)
        return CLIPTextModel(config).state_dict()


def training_state(model: InstantRestore, dtype: torch.dtype, prefix: str = "net.") -> dict[str, torch.Tensor]:
    """The authors' FaceReplaceModel.state_dict() layout, from this package's model."""
    out = {}
    for part in ("unet", "vae"):
        module = getattr(model, part)
        for name, tensor in module.state_dict().items():
            if ".modules_to_save.default." in name:  # their UNet conv_in is a plain, fully trained conv
                out[f"{prefix}{part}.{name.replace('.modules_to_save.default.', '.')}"] = tensor
            elif ".original_module." in name:
                continue
            elif ".lora_" in name:
                out[f"{prefix}{part}.{name.replace('.default.', '.vae_skip.') if part == 'vae' else name}"] = tensor
            else:
                out[f"{prefix}{part}.{name}"] = tensor
    for name, tensor in model.base_state_dict().items():
        if name != "prompt_embeds":
            out[f"{prefix}original_{name}"] = tensor
    for name, tensor in micro_text_encoder_state().items():
        out[f"{prefix}text_encoder.{name}"] = tensor
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in out.items()}


def write_training_checkpoint(model, path, dtype=torch.bfloat16, ddp=False) -> None:
    state = training_state(model, dtype, "net.module." if ddp else "net.")
    cfg = {"model": {"use_adain": True, "train_input": False, "lora_rank_unet": 4, "lora_rank_vae": 4},
           "optim": {"lambda_landmark": 5000.0, "scheduler_type": "CONSTANT"}, "exp_dir": "/cluster/exp"}
    optimizer = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2, dtype=dtype)}},
                 "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.999), "params": [0], "initial_lr": 5e-4}]}
    torch.save({"state_dict": state, "cfg": cfg, "optimizer": optimizer}, path)


def write_adapter_file(model, path) -> None:
    """save_model's dict: LoRA + the full conv_in of the UNet, LoRA of the VAE (adapter "vae_skip")."""
    unet = {}
    for name, tensor in model.unet.state_dict().items():
        if ".lora_" in name:
            unet[name] = tensor
        elif ".modules_to_save.default." in name:
            unet[name.replace(".modules_to_save.default.", ".")] = tensor
    vae = {k.replace(".default.", ".vae_skip."): v for k, v in model.vae.state_dict().items() if ".lora_" in k}
    torch.save({"unet_lora_target_modules": list(model.config.unet_lora_targets),
                "vae_lora_target_modules": list(model.config.vae_lora_targets), "rank_unet": model.config.unet_lora_rank,
                "rank_vae": model.config.vae_lora_rank, "state_dict_unet": unet, "state_dict_vae": vae}, path)


@pytest.fixture(scope="module")
def reference_model() -> InstantRestore:
    return official_micro_model()


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(3)
    return torch.rand(1, 3, SIZE, SIZE, generator=gen) * 2 - 1, torch.rand(4, 3, SIZE, SIZE, generator=gen) * 2 - 1


def _restore(model, inputs, seed=0, refs=4):
    lq, refs_ = inputs
    with torch.no_grad():
        return model(lq, references=refs_[:refs], generator=torch.Generator().manual_seed(seed)).image


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_training_checkpoint_loads_exactly(tmp_path, reference_model, inputs, dtype):
    model = official_micro_model(dtype=dtype) if dtype != torch.bfloat16 else reference_model
    write_training_checkpoint(model, tmp_path / "final_model_ckpt.pt", dtype=dtype)
    checkpoint = read_official(tmp_path / "final_model_ckpt.pt")
    assert checkpoint.dtype == dtype and checkpoint.kind == "training-checkpoint"
    loaded = InstantRestore.from_official(tmp_path / "final_model_ckpt.pt", prompt_embeds=model.prompt_embeds, **ARCH)
    assert loaded.config.profile == "official" and loaded.config.unet_lora_alpha == 2
    assert torch.equal(_restore(loaded, inputs), _restore(model, inputs))


def test_ddp_prefix_and_checkpoint_text_encoder(tmp_path, reference_model, inputs):
    write_training_checkpoint(reference_model, tmp_path / "ckpt.pt", ddp=True)
    loaded = InstantRestore.from_official(tmp_path / "ckpt.pt", **ARCH)  # prompt from the checkpoint's text encoder
    from instantrestore.official.prompt import PROMPT_TOKEN_IDS, _text_encoder_from_state

    encoder = _text_encoder_from_state({k: v.to(torch.bfloat16) for k, v in micro_text_encoder_state().items()})
    expected = encoder(torch.tensor([PROMPT_TOKEN_IDS]))[0]
    assert torch.allclose(loaded.prompt_embeds, expected)
    with torch.no_grad():
        reference_model.prompt_embeds.copy_(expected)
    assert torch.equal(_restore(loaded, inputs), _restore(reference_model, inputs))


def test_converted_folder_equals_direct_load(tmp_path, reference_model, inputs):
    write_training_checkpoint(reference_model, tmp_path / "ckpt.pt")
    out = convert_official(tmp_path / "ckpt.pt", tmp_path / "converted", prompt_embeds=reference_model.prompt_embeds, **ARCH)
    assert sorted(os.listdir(out)) == ["adapters.safetensors", "base.safetensors", "config.json"]
    direct = InstantRestore.from_official(tmp_path / "ckpt.pt", prompt_embeds=reference_model.prompt_embeds, **ARCH)
    again = InstantRestore.from_pretrained(out)
    assert again.config == direct.config
    assert torch.equal(_restore(again, inputs), _restore(direct, inputs))
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_official(tmp_path / "ckpt.pt", out, prompt_embeds=reference_model.prompt_embeds, **ARCH)


def test_adapter_file_over_local_bases(tmp_path, reference_model, inputs):
    write_adapter_file(reference_model, tmp_path / "adapters.pkl")
    from diffusers import AutoencoderKL, UNet2DConditionModel

    # The base weights as diffusers folders, as stabilityai/sd-turbo and sd-vae-ft-mse are laid out.
    base_unet, base_vae = tmp_path / "sd-turbo" / "unet", tmp_path / "vae"
    plain = reference_model.base_state_dict()

    unet = UNet2DConditionModel(**MICRO_UNET)
    unet.load_state_dict({k.removeprefix("unet."): v for k, v in plain.items() if k.startswith("unet.")})
    unet.save_pretrained(base_unet)
    vae = AutoencoderKL(**MICRO_VAE)
    vae.load_state_dict({k.removeprefix("vae."): v for k, v in plain.items() if k.startswith("vae.")})
    vae.save_pretrained(base_vae)
    loaded = InstantRestore.from_official(tmp_path / "adapters.pkl", base_model=str(base_unet.parent),
                                          base_vae=str(base_vae), prompt_embeds=reference_model.prompt_embeds)
    assert loaded.config.vae_lora_alpha == 2 and loaded.config.base_vae == str(base_vae)
    assert torch.equal(_restore(loaded, inputs), _restore(reference_model, inputs))


def test_random_draws_follow_the_authors_order(reference_model, inputs):
    """Seeded draws equal the named noises drawn by hand in the documented order and layouts."""
    lq, refs = inputs
    gen = torch.Generator().manual_seed(11)
    from instantrestore.generator.adapters import adapters_disabled

    scale = reference_model.config.vae["scaling_factor"]
    with torch.no_grad():
        dist = reference_model.vae.encode(lq).latent_dist
        input_posterior = torch.randn(dist.mean.shape, generator=gen)
        latent = (dist.mean + dist.std * input_posterior) * scale
        with adapters_disabled(reference_model.unet, reference_model.vae):
            refs_dist = reference_model.vae.encode(refs).latent_dist
        refs_posterior = torch.randn(refs_dist.mean.shape, generator=gen)
        refs_latent = (refs_dist.mean + refs_dist.std * refs_posterior) * scale
        # randn_like: the latents' own memory layout (channels-last out of the VAE for a batch of 4)
        refs_noise = torch.empty_like(refs_latent).normal_(generator=gen)
        torch.randn(refs_latent.shape, generator=gen)  # the scheduler step's unused draw
        input_noise = torch.empty_like(latent).normal_(generator=gen)
        noises = dict(input_posterior=input_posterior, refs_posterior=refs_posterior, refs_noise=refs_noise,
                      input_noise=input_noise)
        assert set(noises) == set(NOISE_NAMES)
        replayed = reference_model(lq, references=refs, noises=noises).image
        seeded = reference_model(lq, references=refs, generator=torch.Generator().manual_seed(11)).image
        other_seed = reference_model(lq, references=refs, generator=torch.Generator().manual_seed(12)).image
    assert torch.equal(replayed, seeded)
    assert not torch.equal(seeded, other_seed)


def test_official_profile_settings(reference_model):
    cfg = reference_model.config
    assert (cfg.timestep, cfg.branch_timestep, cfg.latent_sampling, cfg.adain_std) == (249, 1, "sample", "unbiased")
    up = reference_model.unet.up_blocks[0]
    assert (up.s1, up.s2, up.b1, up.b2) == (0.9, 0.2, 1.4, 1.6)  # FreeU on (both branches: one UNet)
    names = [n for n, _ in reference_model.unet.named_modules()]
    assert "conv_in.modules_to_save.default" in names and "conv_in.lora_A" not in " ".join(names)
    assert any(n.startswith("encoder.conv_in.lora_A") for n, _ in reference_model.vae.named_modules())
    cache = reference_model.encode_references(torch.zeros(2, 3, SIZE, SIZE))
    assert cache.timestep == 1


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_with_code_is_refused(tmp_path):
    torch.save({"state_dict": {"net.unet.x": torch.zeros(1)}, "cfg": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(OfficialCheckpointError, match="run code"):
        read_official(tmp_path / "evil.pt")
    with open(tmp_path / "legacy.pt", "wb") as handle:  # not even a torch file
        pickle.dump(_Evil(), handle)
    with pytest.raises(OfficialCheckpointError):
        read_official(tmp_path / "legacy.pt")


def test_truncated_and_foreign_files_give_clear_errors(tmp_path, reference_model, capsys):
    write_training_checkpoint(reference_model, tmp_path / "ckpt.pt")
    data = (tmp_path / "ckpt.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(OfficialCheckpointError, match="truncated or corrupted"):
        read_official(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(OfficialCheckpointError, match="not an InstantRestore checkpoint"):
        read_official(tmp_path / "other.pt")
    from instantrestore.cli import main

    assert main(["convert-official", str(tmp_path / "cut.pt"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cut.pt" in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_hf_addresses_download_through_the_hub_cache(tmp_path, monkeypatch, reference_model):
    from instantrestore.official import hub

    write_training_checkpoint(reference_model, tmp_path / "final_model_ckpt.pt")
    calls = []
    monkeypatch.setattr(hub, "_download", lambda repo, name: calls.append((repo, name)) or str(tmp_path / name))
    assert hub.resolve_checkpoint("hf://hwdz15508/InstantRestore/final_model_ckpt.pt") == tmp_path / "final_model_ckpt.pt"
    assert calls == [("hwdz15508/InstantRestore", "final_model_ckpt.pt")]
    loaded = InstantRestore.from_official("hf://hwdz15508/InstantRestore/final_model_ckpt.pt",
                                          prompt_embeds=reference_model.prompt_embeds, **ARCH)
    assert loaded.config.profile == "official"
    with pytest.raises(ValueError, match="hf://OWNER/REPO/FILE"):
        hub.resolve_checkpoint("hf://hwdz15508")


@pytest.mark.slow
def test_sd_turbo_architecture_in_both_formats(tmp_path):
    """Random weights on the real SD-Turbo architecture (9 injected layers, non-zero LoRA, trained
    conv_in) in both of the authors' formats: each loads, converts, reloads and restores; the
    converted folder restores exactly as the direct load."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    model = InstantRestore.from_config(official_config(), seed=0)
    assert len(model.injected_layers) == 9 and model.config.backbone == "sd-turbo"
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 1e-3)
            p.copy_(p.to(torch.bfloat16).float())
    lq, refs = torch.rand(1, 3, SIZE, SIZE, generator=gen) * 2 - 1, torch.rand(2, 3, SIZE, SIZE, generator=gen) * 2 - 1
    with torch.no_grad():
        expected = model(lq, references=refs, generator=torch.Generator().manual_seed(0)).image
    write_training_checkpoint(model, tmp_path / "final_model_ckpt.pt")
    write_adapter_file(model, tmp_path / "adapters.pkl")
    plain = model.base_state_dict()
    unet = UNet2DConditionModel(**model.config.unet)
    unet.load_state_dict({k.removeprefix("unet."): v for k, v in plain.items() if k.startswith("unet.")})
    unet.save_pretrained(tmp_path / "sd-turbo" / "unet")
    vae = AutoencoderKL(**model.config.vae)
    vae.load_state_dict({k.removeprefix("vae."): v for k, v in plain.items() if k.startswith("vae.")})
    vae.save_pretrained(tmp_path / "vae")
    prompt = model.prompt_embeds.clone()
    del model, plain, unet, vae

    def restored(m):
        with torch.no_grad():
            return m(lq, references=refs, generator=torch.Generator().manual_seed(0)).image

    direct = InstantRestore.from_official(tmp_path / "final_model_ckpt.pt", prompt_embeds=prompt)
    assert torch.equal(restored(direct), expected)
    del direct
    from_adapters = InstantRestore.from_official(tmp_path / "adapters.pkl", base_model=str(tmp_path / "sd-turbo"),
                                                 base_vae=str(tmp_path / "vae"), prompt_embeds=prompt)
    # The same weights (checked equal) reloaded through diffusers' from_pretrained: equal to float
    # round-off here (measured 1.7e-5 max, ~1e-7 typical), bit-equal in the micro test above.
    assert (restored(from_adapters) - expected).abs().max() < 1e-4
    del from_adapters
    convert_official(tmp_path / "final_model_ckpt.pt", tmp_path / "converted", prompt_embeds=prompt)
    assert torch.equal(restored(InstantRestore.from_pretrained(tmp_path / "converted")), expected)
