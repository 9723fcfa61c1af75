"""The inference speed levers (generator/inference.py): merged LoRA, bf16, channels-last, and the
load without random initialisation (generator/empty_init.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from instantrestore import InstantRestore
from instantrestore.generator import inference, model_io
from instantrestore.generator.fingerprints import reference_key

SIZE = 64


def _micro(seed: int = 0) -> InstantRestore:
    """A tiny generator whose LoRA updates are non-zero (peft starts B at zero), so that merging
    changes the weights and merged vs unmerged compares something."""
    model = InstantRestore.from_config("tiny", seed=seed, image_size=SIZE).eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return model


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 2.0) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return 10 * torch.log10(torch.tensor(peak ** 2 / max(mse, 1e-20))).item()


def test_merged_equals_unmerged_within_1e4_and_keeps_the_caches() -> None:
    model = _micro()
    lq, refs = _images(2, 1), _images(3, 2)
    cache = model.encode_references(refs)
    exact = model.restore(lq, references=cache)
    key, fingerprint = reference_key(model), model.weights_fingerprint()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    inference.merge_adapters(model)
    assert inference.adapters_merged(model)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all("base_layer" in n for n in changed)  # the LoRA was folded into the weights
    # same reference branch: the same fingerprint, key and (within rounding) keys/values
    assert model.weights_fingerprint() == fingerprint and reference_key(model) == key
    merged_cache = model.encode_references(refs)
    for name in cache.keys:
        assert torch.allclose(merged_cache.keys[name], cache.keys[name], atol=1e-4)
        assert torch.allclose(merged_cache.values[name], cache.values[name], atol=1e-4)
    assert (model.restore(lq, references=cache) - exact).abs().max() < 1e-4
    assert (model.restore(lq, references=refs) - exact).abs().max() < 1e-4  # cold, on the merged model
    assert (model.restore(lq) - _micro().restore(lq)).abs().max() < 1e-4  # blind
    # encoding references on a merged model leaves its weights as they were
    merged = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.encode_references(refs)
    assert all(torch.equal(p, merged[n]) for n, p in model.named_parameters())

    inference.unmerge_adapters(model)
    assert (model.restore(lq, references=cache) - exact).abs().max() < 1e-4  # each weight rounded twice


def test_a_merged_model_unmerges_to_train_and_refuses_to_save(tmp_path) -> None:
    model = _micro()
    model.optimize_for_inference("fp32", merge=True, channels_last=False)
    with pytest.raises(ValueError, match="merged"):
        model.save_pretrained(tmp_path / "m")
    model.train()
    assert not inference.adapters_merged(model)
    assert not any(layer.merged for layer in inference._lora_layers(model))
    with pytest.raises(ValueError, match="eval"):
        inference.merge_adapters(model)


def test_channels_last_changes_nothing_but_the_layout() -> None:
    model = _micro()
    lq, cache = _images(1, 3), model.encode_references(_images(2, 4))
    exact, fingerprint = model.restore(lq, references=cache), model.weights_fingerprint()
    inference.to_channels_last(model)
    assert model.weights_fingerprint() == fingerprint
    assert (model.restore(lq, references=cache) - exact).abs().max() < 1e-4


def test_precision_choice() -> None:
    assert inference.resolve_precision("fp32", "cpu") == "fp32"
    assert inference.resolve_precision("auto", "cuda") == "fp16"
    assert inference.resolve_precision("auto", "cpu") == ("bf16" if inference.cpu_has_fast_bf16() else "fp32")
    with pytest.raises(ValueError, match="precision: expected one of auto, fp32, bf16, fp16"):
        inference.resolve_precision("half", "cpu")
    model = _micro()
    assert model.optimize_for_inference("fp32") == {"precision": "fp32", "merged": False, "channels_last": False,
                                                    "fp32_decoder": "none"}
    assert not inference.adapters_merged(model) and model.dtype == torch.float32


def test_auto_without_native_bf16_is_fp32_merged_channels_last_and_close_to_exact(monkeypatch) -> None:
    monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda: False)
    exact, fast = _micro(seed=2), _micro(seed=2)
    lq, refs = _images(1, 3), _images(2, 4)
    expected = exact.restore(lq, references=exact.encode_references(refs))
    applied = fast.optimize_for_inference("auto")
    assert applied == {"precision": "fp32", "merged": True, "channels_last": True, "fp32_decoder": "none"}
    assert inference.adapters_merged(fast) and fast.dtype == torch.float32
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    got = fast.restore(lq, references=fast.encode_references(refs))
    assert (got - expected).abs().max() < 1e-4


@pytest.mark.skipif(not inference.cpu_has_fast_bf16(), reason="this CPU has no native bf16")
def test_bf16_fast_path_is_close_to_fp32_on_the_shipped_model() -> None:
    from instantrestore.assets import load_shipped_model
    from instantrestore.bench.cases import make_case

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact_model, fast_model = load_shipped_model(), load_shipped_model()
    case = make_case(world_seed=1000, identity=0, wrong_identity=1)  # a held-out person, sr8
    exact = exact_model.restore(case.lq, references=list(case.refs))
    applied = fast_model.optimize_for_inference("bf16")
    assert applied["precision"] == "bf16" and applied["merged"] and fast_model.dtype == torch.bfloat16
    fast = fast_model.restore(case.lq, references=list(case.refs))
    assert _psnr(torch.as_tensor(np.asarray(fast)), torch.as_tensor(np.asarray(exact)), peak=255) > 40


@pytest.mark.parametrize("amx, part", [(False, "all"), (True, "tail")])
def test_auto_keeps_the_decoder_in_fp32_as_measured_for_the_cpu(monkeypatch, amx, part) -> None:
    """Without AMX the whole decoder stays fp32 (faster and closer there); with AMX only its output
    layers (a bf16 decoder is 4x faster there). The kept modules hold their fp32 values."""
    monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: amx)
    model, exact = _micro(seed=3), _micro(seed=3)
    inference.merge_adapters(exact.eval())
    applied = model.optimize_for_inference("auto")
    assert applied["precision"] == "bf16" and applied["fp32_decoder"] == part
    decoder, reference = model.vae.decoder, exact.vae.decoder
    assert decoder.conv_out.weight.dtype == torch.float32
    assert torch.equal(decoder.conv_out.weight, reference.conv_out.weight)  # fp32 values, not bf16-rounded
    assert decoder.conv_in.weight.dtype == (torch.float32 if part == "all" else torch.bfloat16)
    assert model.unet.conv_in.weight.dtype == torch.bfloat16
    lq, refs = _images(1, 3), _images(2, 4)
    out = model.restore(lq, references=model.encode_references(refs))
    assert out.shape == lq.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="expected one of all, last, tail, none"):
        _micro().optimize_for_inference("bf16", fp32_decoder="half")


def test_load_without_random_init_equals_the_slow_load_bit_for_bit(tmp_path) -> None:
    model = _micro(seed=5)
    model.save_pretrained(tmp_path / "m")
    fast = InstantRestore.from_pretrained(tmp_path / "m")
    slow = model_io.build_with_base_of(InstantRestore, tmp_path / "m")  # random build, then copy_
    slow.load_adapter_state(model_io.load_tensors(tmp_path / "m" / "adapters.safetensors"))
    slow.eval()
    a, b = fast.state_dict(), slow.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    assert [p.requires_grad for p in fast.parameters()] == [p.requires_grad for p in slow.parameters()]
    assert not any(t.is_meta for t in [*fast.parameters(), *fast.buffers()])
    lq, refs = _images(1, 6), _images(2, 7)
    assert torch.equal(fast.restore(lq, references=refs), slow.restore(lq, references=refs))
    assert fast.weights_fingerprint() == model.weights_fingerprint()



def test_load_maps_the_file_without_copying_and_never_writes_it(tmp_path) -> None:
    from instantrestore.generator import empty_init
    from instantrestore.utils.files import file_digest

    model_io.save_pretrained(_micro(seed=8), tmp_path / "m", include_base=True)
    files = {p: file_digest(p) for p in (tmp_path / "m").glob("*.safetensors")}
    loaded = InstantRestore.from_pretrained(tmp_path / "m")
    mapped = {id(t) for t in empty_init.file_mapped(loaded)}
    assert {id(p) for p in loaded.parameters()} <= mapped  # every weight a view of the file
    before = loaded.restore(_images(1, 9), references=_images(2, 10))
    with torch.no_grad():  # writes go to private copies of the pages, never to the file
        loaded.unet.conv_in.weight.add_(1.0)
        inference.merge_adapters(loaded)
    assert {p: file_digest(p) for p in files} == files
    again = InstantRestore.from_pretrained(tmp_path / "m")
    assert torch.equal(again.restore(_images(1, 9), references=_images(2, 10)), before)


def test_a_partial_replacement_lets_the_map_go_and_keeps_values_and_ties(tmp_path) -> None:
    from instantrestore.generator import empty_init

    _micro(seed=8).save_pretrained(tmp_path / "m", include_base=True)
    model = InstantRestore.from_pretrained(tmp_path / "m")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    inference.to_channels_last(model)  # only the 4-d weights get new memory ...
    assert empty_init.file_mapped(model) == []  # ... and the rest is copied out of the map
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert model.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    fresh = InstantRestore.from_pretrained(tmp_path / "m")
    fresh.optimize_for_inference("bf16")  # a full cast: nothing left mapped either
    assert empty_init.file_mapped(fresh) == []
    exact = InstantRestore.from_pretrained(tmp_path / "m")
    exact.optimize_for_inference("fp32")  # the exact path changes nothing, so keeps the map
    assert {id(p) for p in exact.parameters()} <= {id(t) for t in empty_init.file_mapped(exact)}
