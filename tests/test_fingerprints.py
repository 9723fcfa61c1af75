"""fingerprints.py: weight fingerprints that depend on the values only (not the thread count,
device or load path), checkpoints that carry them, and the one reference key that says whether a
reference cache fits a model."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file

import instantrestore.generator.fingerprints as fp
from instantrestore import InstantRestore, ReferenceCache
from instantrestore.generator import model_io
from instantrestore.generator.config import TINY_VAE, backbone_config

pytestmark = pytest.mark.filterwarnings("ignore::instantrestore.generator.model_io.SyntheticModelWarning")


def tiny(seed: int = 0, **overrides) -> InstantRestore:
    return InstantRestore.from_config("tiny", seed=seed, **overrides).eval()


def images(n: int, seed: int, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_same_weights_same_fingerprint_at_any_thread_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tiny(seed=3)
        at_one = (one.weights_fingerprint(), fp.model_fingerprint(one), fp.reference_key(one))
        torch.set_num_threads(2)
        two = tiny(seed=3)
        at_two = (two.weights_fingerprint(), fp.model_fingerprint(two), fp.reference_key(two))
    finally:
        torch.set_num_threads(threads)
    assert at_one == at_two
    assert fp.tensors_digest(one.adapter_state_dict().values()) == fp.tensors_digest(two.adapter_state_dict().values())


def test_one_changed_weight_changes_the_fingerprint():
    model = tiny()
    before, whole = model.weights_fingerprint(), fp.model_fingerprint(model)
    weight = model.unet.conv_out.weight
    with torch.no_grad():
        weight.view(-1)[7] += 1e-3  # in place: the version counter tells
    changed = model.weights_fingerprint()
    assert changed != before
    model.unet.conv_out.weight.data = torch.zeros_like(weight)  # replaced: the storage tells
    assert model.weights_fingerprint() not in (before, changed)
    fresh = tiny()
    with torch.no_grad():
        next(p for n, p in fresh.named_parameters() if "lora_B" in n).add_(1)
    assert fresh.weights_fingerprint() == before  # adapters never run in the reference branch
    assert fp.model_fingerprint(fresh) != whole


def test_a_kept_fingerprint_is_trusted_without_collecting_the_tensors_yet_catches_every_change(monkeypatch):
    model = tiny()
    before = model.weights_fingerprint()
    model.weights_fingerprint()  # the watch is in place
    collect = fp.PARTS["base"]
    calls = []
    monkeypatch.setitem(fp.PARTS, "base", lambda m: calls.append(1) or collect(m))
    assert fp.reference_key(model) == fp.reference_key(model) and calls == []  # the hot path collects nothing
    # a tensor replaced by writing the module's table directly (no registration hook runs)
    norm = model.vae.decoder.conv_norm_out
    old = norm._parameters["bias"]
    norm._parameters["bias"] = torch.nn.Parameter(old.detach() + 1e-3)
    changed = model.weights_fingerprint()
    assert changed != before and len(calls) == 1
    norm._parameters["bias"] = old  # back to the old tensor: the old digest
    assert model.weights_fingerprint() == before and len(calls) == 2
    with torch.no_grad():
        old.add_(1.0)  # in place
    assert model.weights_fingerprint() not in (before, changed)
    with torch.no_grad():
        old.sub_(1.0)
    before = model.weights_fingerprint()
    # a whole submodule swapped (a registration): caught
    swapped = torch.nn.GroupNorm(norm.num_groups, norm.num_channels)
    torch.nn.init.constant_(swapped.bias, 0.5)  # other values, else the digest would rightly be the same
    model.vae.decoder.conv_norm_out = swapped
    assert model.weights_fingerprint() not in (before, changed)


def test_save_load_round_trip_keeps_the_fingerprint_without_hashing(tmp_path, monkeypatch):
    model = tiny(seed=4)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_B" in n).add_(0.1)
    model.save_pretrained(tmp_path / "ckpt")
    expected = (model.weights_fingerprint(), fp.model_fingerprint(model))
    monkeypatch.setattr(fp, "state_digest", lambda *a, **k: pytest.fail("the weights were hashed again"))
    loaded = InstantRestore.from_pretrained(tmp_path / "ckpt")
    assert (loaded.weights_fingerprint(), fp.model_fingerprint(loaded)) == expected
    loaded.to(memory_format=torch.channels_last)  # moved, no value changed: still no hashing
    assert loaded.weights_fingerprint() == expected[0]


def test_loaded_and_built_in_memory_agree(tmp_path):
    model = tiny(seed=5)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = InstantRestore.from_pretrained(tmp_path / "ckpt")
    built = tiny(seed=9)  # other random weights, then the same values copied in
    built.load_base_state(model.base_state_dict())
    built.load_adapter_state(model.adapter_state_dict())
    assert built.weights_fingerprint() == loaded.weights_fingerprint() == model.weights_fingerprint()
    assert fp.model_fingerprint(built) == fp.model_fingerprint(loaded)
    # a checkpoint of another algorithm's (or no) record: hashed, the same value
    base = tmp_path / "ckpt" / "base.safetensors"
    save_file(load_file(base), base, metadata={"format": "instantrestore/1"})
    assert InstantRestore.from_pretrained(tmp_path / "ckpt").weights_fingerprint() == model.weights_fingerprint()


def test_a_stored_precision_keeps_its_recorded_fingerprint(tmp_path, monkeypatch):
    model = tiny(seed=6).to(torch.bfloat16).to(torch.float32)  # values a bf16 file holds exactly
    model_io.save_pretrained(model, tmp_path / "bf16", include_base=True, dtype=torch.bfloat16)
    assert load_file(tmp_path / "bf16" / "base.safetensors")["unet.conv_in.weight"].dtype == torch.bfloat16
    in_memory = model.weights_fingerprint()
    in_bf16 = tiny(seed=6).to(torch.bfloat16).weights_fingerprint()
    assert in_bf16 != in_memory  # another dtype: other bytes
    monkeypatch.setattr(fp, "state_digest", lambda *a, **k: pytest.fail("the weights were hashed again"))
    assert InstantRestore.from_pretrained(tmp_path / "bf16").weights_fingerprint() == in_memory
    assert InstantRestore.from_pretrained(tmp_path / "bf16", dtype=torch.bfloat16).weights_fingerprint() == in_bf16


def test_weights_made_under_inference_mode_are_fingerprinted_correctly():
    reference = tiny(seed=7).weights_fingerprint()
    with torch.inference_mode():
        built = tiny(seed=7)  # the builders make ordinary tensors even here
        cfg = backbone_config("tiny")
        torch.manual_seed(7)
        unet, vae = UNet2DConditionModel(**cfg.unet), AutoencoderKL(**cfg.vae)
        raw = InstantRestore(cfg, unet, vae, torch.zeros(1, cfg.prompt_tokens, cfg.unet["cross_attention_dim"]))
    assert not any(p.is_inference() for p in built.parameters())
    assert built.weights_fingerprint() == reference
    assert any(p.is_inference() for p in raw.parameters())  # no version counters: hashed every time
    first = raw.weights_fingerprint()
    with torch.inference_mode():
        raw.unet.conv_out.weight.add_(1)
    assert raw.weights_fingerprint() != first


def test_a_cast_and_back_gives_the_same_fingerprint():
    model = tiny(seed=8)
    before = model.weights_fingerprint()
    model.to(torch.float64)
    assert model.weights_fingerprint() != before
    model.to(torch.float32)
    assert model.weights_fingerprint() == before


# ------------------------------------------------------------------ the reference key
@pytest.mark.parametrize("setting", [
    {"freeu": {"s1": 0.9, "s2": 0.2, "b1": 1.4, "b2": 1.6}},
    {"latent_sampling": "sample"},
    {"reference_noise": True},
    {"vae": {**TINY_VAE, "scaling_factor": 0.5}},
    {"image_size": 64},
    {"reference_timestep": 1},
])
def test_a_cache_of_other_settings_is_refused(setting):
    plain, other = tiny(), tiny(**setting)
    assert plain.weights_fingerprint() == other.weights_fingerprint()
    assert fp.reference_key(plain) != fp.reference_key(other)
    cache = other.encode_references(images(1, 1))
    name = {"vae": "scaling_factor", "reference_timestep": "timestep"}.get(next(iter(setting)), next(iter(setting)))
    with pytest.raises(ValueError, match=rf"encoded by another model or settings \({name}: .*encode the references again"):
        plain.restore(images(1, 0), references=cache)
    plain.restore(images(1, 0), references=plain.encode_references(images(1, 1)))  # its own cache fits


def test_a_cache_of_other_weights_or_dtype_is_refused():
    model = tiny()
    cache = tiny(seed=1).encode_references(images(1, 1))
    with pytest.raises(ValueError, match=r"another model or settings \(weights: "):
        model.restore(images(1, 0), references=cache)
    double = tiny().to(torch.float64)
    with pytest.raises(ValueError, match=r"another model or settings \(weights: .*dtype: 'torch.float32' in the cache, "
                                         r"'torch.float64' here"):
        double.restore(images(1, 0).double(), references=model.encode_references(images(1, 1)))


def test_a_cache_file_without_a_key_is_refused(tmp_path):
    model = tiny()
    cache = model.encode_references(images(2, 1))
    cache.save(tmp_path / "refs.safetensors")
    again = ReferenceCache.load(tmp_path / "refs.safetensors")
    assert again.model_key == fp.reference_key(model) and again.settings == cache.settings
    assert torch.equal(model.restore(images(1, 0), references=again), model.restore(images(1, 0), references=cache))
    old = {k: v for k, v in cache.metadata().items() if k not in ("model_key", "settings")}
    tensors = load_file(tmp_path / "refs.safetensors")
    save_file(tensors, tmp_path / "old.safetensors", metadata=old)
    with pytest.raises(ValueError, match=r"encoded by another model or settings \(the cache records no model key"):
        model.restore(images(1, 0), references=ReferenceCache.load(tmp_path / "old.safetensors"))


def test_tensors_digest_is_exact():
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert fp.tensors_digest([a]) == fp.tensors_digest([a.clone()])
    assert fp.tensors_digest([a]) != fp.tensors_digest([a.reshape(3, 2)])  # shape
    assert fp.tensors_digest([a]) != fp.tensors_digest([a.double()])  # dtype
    b = a.clone()
    b[1, 2] = torch.nextafter(b[1, 2], torch.tensor(100.0))
    assert fp.tensors_digest([a]) != fp.tensors_digest([b])  # one ulp
    assert fp.tensors_digest([a.t()]) == fp.tensors_digest([a.t().contiguous()])  # layout does not matter
