"""The real SD-Turbo architecture (random weights, no download): sizes, the 9 injected layers,
and that nothing outside the decoder self-attention changes."""
from __future__ import annotations

import re

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from instantrestore import InstantRestore
from instantrestore.generator.attention import PassThroughAttnProcessor, SharedAttnProcessor
from instantrestore.generator.adapters import is_adapter_param

DECODER_SELF = re.compile(r"^up_blocks\.[1-3]\.attentions\.[0-2]\.transformer_blocks\.0\.attn1$")


@pytest.fixture(scope="module")
def sd_turbo() -> InstantRestore:
    return InstantRestore.from_config("sd-turbo", seed=0).eval()


def test_parameter_counts_match_sd_turbo(sd_turbo):
    count = lambda module: sum(p.numel() for n, p in module.named_parameters() if not is_adapter_param(n))  # noqa: E731
    assert round(count(sd_turbo.unet) / 1e6, 1) == 865.9
    assert round(count(sd_turbo.vae) / 1e6, 1) == 83.7


def test_exactly_the_nine_decoder_self_attention_layers_are_injected(sd_turbo):
    processors = sd_turbo.unet.attn_processors
    assert len(processors) == 32
    assert len([k for k in processors if k.endswith("attn1.processor")]) == 16
    assert len(sd_turbo.injected_layers) == 9
    assert all(DECODER_SELF.match(name) for name in sd_turbo.injected_layers)
    for key, proc in processors.items():
        if key.removesuffix(".processor") in sd_turbo.injected_layers:
            assert isinstance(proc, SharedAttnProcessor) and proc.name == key.removesuffix(".processor")
        else:
            assert type(proc) is PassThroughAttnProcessor


def _record_attention_outputs(unet, names):
    outputs, hooks = {}, []
    for name in names:
        hooks.append(unet.get_submodule(name).register_forward_hook(
            lambda m, i, o, n=name: outputs.__setitem__(n, o.detach().clone())))
    return outputs, hooks


@pytest.mark.slow
def test_nothing_outside_the_decoder_self_attention_changes(sd_turbo):
    lq = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    refs = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    unet = sd_turbo.unet
    others = [k.removesuffix(".processor") for k in unet.attn_processors
              if k.removesuffix(".processor") not in sd_turbo.injected_layers]
    encoder_side = [n for n in others if not n.startswith("up_blocks")]
    with torch.no_grad():
        outputs, hooks = _record_attention_outputs(unet, encoder_side)
        blind = sd_turbo(lq).image
        blind_attn = dict(outputs)
        with_refs = sd_turbo(lq, references=refs).image
        for h in hooks:
            h.remove()
        # Encoder and mid-block attention (self and cross) see exactly the same thing with references.
        for name in encoder_side:
            assert torch.equal(outputs[name], blind_attn[name]), name
        assert not torch.allclose(with_refs, blind, atol=1e-4)
        # Without references, every layer is diffusers' own processor: same output bit for bit.
        saved = unet.attn_processors
        unet.set_attn_processor(AttnProcessor2_0())
        try:
            plain = sd_turbo(lq).image
        finally:
            unet.set_attn_processor(saved)
    torch.testing.assert_close(blind, plain, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_self_reference_invariance_on_sd_turbo(sd_turbo):
    lq = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        blind = sd_turbo(lq).image
        selfref = sd_turbo(lq, references=lq).image
    torch.testing.assert_close(selfref, blind, rtol=0, atol=1e-3)
