"""The tiny backbone end to end: invariances, caches, checkpoints, determinism, bad input."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image

from instantrestore import InstantRestore, ReferenceCache
from instantrestore.utils.tensor_io import UntrustedPickleError, load_tensors
from instantrestore.utils.images import ImageError


@pytest.fixture(scope="module")
def model() -> InstantRestore:
    return InstantRestore.from_config("tiny", seed=0).eval()


def images(n: int, seed: int, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def perturb_adapters(model: InstantRestore, seed: int = 1) -> None:
    """Give LoRA B and the conv copy non-zero changes, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)


@pytest.mark.parametrize("adain", [True, False])
@pytest.mark.parametrize("mode", ["refs_only", "concat"])
def test_self_reference_invariance_at_init(model, adain, mode):
    """LoRA B = 0: a reference identical to the input reproduces the blind output. This pins the
    shared timestep, the noise-free reference path and the adapters-off reference branch together."""
    lq = images(2, 0)
    blind = model(lq).image
    with torch.no_grad():
        for i in range(2):
            cache = model.encode_references(lq[i:i + 1])
            out = model(lq[i:i + 1], references=cache, adain=adain, attention_mode=mode).image
            torch.testing.assert_close(out, blind[i:i + 1], rtol=0, atol=1e-4)


def test_self_reference_breaks_when_timesteps_differ(model):
    lq = images(1, 0)
    refs = lq[None]
    with torch.no_grad():
        blind = model(lq, timesteps=499).image
        other = model(lq, references=refs, ref_mask=torch.ones(1, 1, dtype=torch.bool), timesteps=499).image
        torch.testing.assert_close(other, blind, rtol=0, atol=1e-4)
        cache = model.encode_references(lq)
    with pytest.raises(ValueError, match="timestep"):
        model(lq, references=cache, timesteps=249)


@pytest.mark.slow
def test_reference_branch_records_base_unet_keys_values():
    model = InstantRestore.from_config("tiny", seed=3).eval()
    perturb_adapters(model)
    refs = images(3, 5)
    cache = model.encode_references(refs)

    base = model.base_state_dict()
    unet = UNet2DConditionModel(**model.config.unet)
    unet.load_state_dict({k[5:]: v for k, v in base.items() if k.startswith("unet.")})
    vae = AutoencoderKL(**model.config.vae)
    vae.load_state_dict({k[4:]: v for k, v in base.items() if k.startswith("vae.")})
    recorded = {}
    hooks = []
    for name in model.injected_layers:
        layer = unet.get_submodule(name)
        hooks.append(layer.to_k.register_forward_hook(lambda m, i, o, n=name: recorded.setdefault(n + ".k", o)))
        hooks.append(layer.to_v.register_forward_hook(lambda m, i, o, n=name: recorded.setdefault(n + ".v", o)))
    t = model.config.timestep
    with torch.no_grad():
        latents = vae.encode(refs).latent_dist.mode() * model.config.vae["scaling_factor"]
        latents = latents * model.alphas_cumprod[t].sqrt()
        unet(latents, torch.full((3,), t), encoder_hidden_states=base["prompt_embeds"].expand(3, -1, -1))
    for name in model.injected_layers:
        torch.testing.assert_close(cache.keys[name], recorded[name + ".k"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cache.values[name], recorded[name + ".v"], rtol=1e-5, atol=1e-5)
    # And the trained generator path really differs from the base weights.
    with torch.no_grad():
        gen_latents = model.encode_latents(refs)
    assert not torch.allclose(gen_latents, latents / model.alphas_cumprod[t].sqrt(), atol=1e-4)


@pytest.mark.slow
def test_references_matter_and_cache_equals_images():
    model = InstantRestore.from_config("tiny", seed=2).eval()
    perturb_adapters(model)
    lq = images(2, 0)
    refs_a, refs_b = images(2, 1), images(2, 2)
    out_a = model.restore(lq, references=refs_a)
    out_b = model.restore(lq, references=refs_b)
    assert (out_a - out_b).abs().max() > 1e-3
    cache = model.encode_references(refs_a)
    torch.testing.assert_close(model.restore(lq, references=cache), out_a, rtol=0, atol=1e-6)
    # Per-sample references with padding give the same as a cache of the real ones.
    padded = torch.cat([refs_a, torch.zeros(1, 3, 64, 64)])[None].expand(2, -1, -1, -1, -1)
    mask = torch.tensor([[True, True, False]] * 2)
    with torch.no_grad():
        per_sample = model(lq, references=padded, ref_mask=mask).image
    torch.testing.assert_close(per_sample, out_a, rtol=0, atol=1e-5)


def test_reference_cache_save_load_round_trip(tmp_path, model):
    cache = model.encode_references(images(2, 4))
    cache.save(tmp_path / "refs.safetensors")
    loaded = ReferenceCache.load(tmp_path / "refs.safetensors")
    assert loaded.layers == cache.layers and loaded.timestep == cache.timestep
    assert loaded.weights_fingerprint == cache.weights_fingerprint and tuple(loaded.latent_hw) == tuple(cache.latent_hw)
    for name in cache.layers:
        assert torch.equal(loaded.keys[name], cache.keys[name]) and torch.equal(loaded.values[name], cache.values[name])
    lq = images(1, 9)
    assert torch.equal(model.restore(lq, references=loaded), model.restore(lq, references=cache))


def test_cache_from_other_weights_is_refused(model):
    other = InstantRestore.from_config("tiny", seed=11)
    cache = other.encode_references(images(1, 1))
    with pytest.raises(ValueError, match="another model"):
        model.restore(images(1, 0), references=cache)


def test_checkpoint_round_trip_is_exact(tmp_path):
    model = InstantRestore.from_config("tiny", seed=4).eval()
    perturb_adapters(model)
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["adapters.safetensors", "base.safetensors",
                                                                     "config.json"]
    loaded = InstantRestore.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    lq, refs = images(2, 0), images(2, 1)
    assert torch.equal(loaded.restore(lq, references=refs), model.restore(lq, references=refs))
    assert loaded.weights_fingerprint() == model.weights_fingerprint()


def test_same_seed_same_output_different_seed_differs():
    lq, refs = images(1, 0), images(2, 1)
    a = InstantRestore.from_config("tiny", seed=5).restore(lq, references=refs)
    b = InstantRestore.from_config("tiny", seed=5).restore(lq, references=refs)
    c = InstantRestore.from_config("tiny", seed=6).restore(lq, references=refs)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_construction_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    InstantRestore.from_config("tiny", seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_only_adapters_and_conv_in_receive_gradients():
    model = InstantRestore.from_config("tiny", seed=0).train()
    lq, refs = images(2, 0), images(2, 1)[None].expand(2, -1, -1, -1, -1)
    out = model(lq, references=refs, timesteps=torch.tensor([249, 749]), noise=torch.randn(2, 4, 16, 16))
    out.image.square().mean().backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad, "no parameter received a gradient"
    assert all("lora_" in n or "modules_to_save" in n for n in with_grad), sorted(with_grad)[:5]
    assert any("vae.encoder.conv_in.modules_to_save" in n for n in with_grad)
    # At init B = 0, so the gradient flows into every B (and into A only once B moves).
    assert any(n.startswith("unet.") and "lora_B" in n for n in with_grad)
    assert any(n.startswith("vae.decoder") and "lora_B" in n for n in with_grad)
    trainable = {id(p) for p in model.trainable_parameters()}
    assert all(id(p) in trainable for n, p in model.named_parameters() if n in with_grad)


def test_pil_input_gives_pil_output(tmp_path, model):
    face = Image.fromarray((torch.rand(64, 64, 3) * 255).byte().numpy())
    face.save(tmp_path / "ref.png")
    out = model.restore(face, references=[tmp_path / "ref.png"])
    assert isinstance(out, Image.Image) and out.size == (128, 128)


def test_bad_inputs_give_clear_errors(tmp_path, model):
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        model.restore(torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError, match="not a multiple of 16"):
        model.restore(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match="empty"):
        model.restore(images(1, 0), references=[])
    with pytest.raises(ValueError, match="batch 3 does not match"):
        model(images(2, 0), references=torch.zeros(3, 1, 3, 64, 64))
    with pytest.raises(ValueError, match="at least one real reference"):
        model(images(1, 0), references=torch.zeros(1, 2, 3, 64, 64), ref_mask=torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="not injected layers"):
        model(images(1, 0), capture=["down_blocks.0.attentions.0.transformer_blocks.0.attn1"])
    text = tmp_path / "face.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        model.restore(text)
    Image.new("RGB", (64, 32)).save(tmp_path / "wide.png")
    with pytest.raises(ValueError, match="square face crop"):
        model.restore(tmp_path / "wide.png")


def test_pickle_checkpoints_are_refused_unless_trusted(tmp_path):
    path = tmp_path / "weights.bin"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(UntrustedPickleError, match="trust_pickle"):
        load_tensors(path)
    assert torch.equal(load_tensors(path, trust_pickle=True)["w"], torch.ones(2))


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    InstantRestore.from_config("tiny", seed=0, unet_lora_rank=4).save_pretrained(tmp_path / "r4")
    model = InstantRestore.from_config("tiny", seed=0)
    with pytest.raises(ValueError, match="checkpoint shape"):
        model.load_adapter_state(load_tensors(tmp_path / "r4" / "adapters.safetensors"))
    state = load_tensors(tmp_path / "r4" / "adapters.safetensors")
    state.pop("prompt_embeds")
    with pytest.raises(ValueError, match="1 missing"):
        model.load_adapter_state(state)


def test_shared_reference_set_follows_per_sample_timesteps(model):
    lq, refs = images(2, 0), images(2, 1)
    t = torch.tensor([249, 749])
    with torch.no_grad():
        shared = model(lq, references=refs, timesteps=t).image
        per_sample = model(lq, references=refs[None].expand(2, -1, -1, -1, -1), timesteps=t).image
    torch.testing.assert_close(shared, per_sample)


def test_strength_one_is_the_default_and_zero_is_blind(model):
    lq, refs = images(2, 20), images(3, 21)
    with torch.no_grad():
        cache = model.encode_references(refs)
        default = model(lq, references=cache).image
        blind = model(lq).image
        one = model(lq, references=cache, strength=1.0).image
        zero = model(lq, references=cache, strength=0.0).image
        zero_images = model(lq, references=refs, strength=0).image
        mixed = model(lq, references=cache, strength=torch.tensor([0.0, 1.0])).image
        half = model(lq, references=cache, strength=0.5).image
    assert torch.equal(one, default)
    assert torch.equal(zero, blind) and torch.equal(zero_images, blind)
    # Per-sample strengths: the blend runs in every layer, and still gives each end exactly.
    torch.testing.assert_close(mixed[0], blind[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed[1], default[1], rtol=0, atol=1e-6)
    assert (default - blind).abs().max() > 1e-3  # the references matter, so the test means something
    assert not torch.allclose(half, default, atol=1e-4) and not torch.allclose(half, blind, atol=1e-4)


def test_restore_passes_strength_through(model):
    lq, refs = images(1, 22), images(2, 23)
    assert torch.equal(model.restore(lq, references=refs, strength=0.0), model.restore(lq))
    assert torch.equal(model.restore(lq, references=refs, strength=1.0), model.restore(lq, references=refs))


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "auto", True, None, torch.tensor([0.5, 0.5, 0.5])])
def test_bad_strength_is_refused_clearly(model, bad):
    with pytest.raises(ValueError, match="strength"):
        model(images(2, 0), strength=bad)


def test_adapters_stay_off_when_adapters_disabled_is_nested():
    """The reference branch switches adapters off inside a base-weights forward (the prior with
    references); leaving the inner block must not switch them back on for the rest of the outer one."""
    from instantrestore.generator.adapters import adapters_disabled

    model = InstantRestore.from_config("tiny", seed=0)
    layers = [m for m in model.unet.modules() if hasattr(m, "enable_adapters") and m is not model.unet]
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    with adapters_disabled(model.unet, model.vae):
        with adapters_disabled(model.unet, model.vae):
            pass
        assert layers and all(layer.disable_adapters for layer in layers)
    assert not any(layer.disable_adapters for layer in layers)
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
