"""The shared-attention processor against a naive einsum/softmax implementation of eq. 4-6."""
from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention

from instantrestore.generator.adain import adain, channel_stats
from instantrestore.generator.attention import SharedAttentionCall, SharedAttnProcessor

EPS = 1e-5


def naive_position_bias(query_hw, key_hw, sigma):
    """-d^2 / (2 sigma^2) between token centres in image-side units, one pair at a time."""
    rows = []
    for qy in range(query_hw[0]):
        for qx in range(query_hw[1]):
            row = []
            for ky in range(key_hw[0]):
                for kx in range(key_hw[1]):
                    dy = (qy + 0.5) / query_hw[0] - (ky + 0.5) / key_hw[0]
                    dx = (qx + 0.5) / query_hw[1] - (kx + 0.5) / key_hw[1]
                    row.append(-(dy * dy + dx * dx) / (2 * sigma * sigma))
            rows.append(row)
    return torch.tensor(rows)


def naive_shared_attention(attn, x, ref_k, ref_v, mode, use_adain, mask=None, bias=None):
    """Loop-and-einsum version of the paper's equations, written independently of the processor.
    bias: (query_hw, key_hw, sigma) of the tiny-world position prior, or None."""
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    b, n = ref_k.shape[:2]
    heads = attn.heads
    d = q.shape[-1] // heads
    values = []
    for i in range(n):
        vi = ref_v[:, i]
        if use_adain:
            mu_r = vi.mean(dim=1, keepdim=True)
            sd_r = (((vi - mu_r) ** 2).mean(dim=1, keepdim=True) + EPS).sqrt()
            mu_o = v.mean(dim=1, keepdim=True)
            sd_o = (((v - mu_o) ** 2).mean(dim=1, keepdim=True) + EPS).sqrt()
            vi = (vi - mu_r) / sd_r * sd_o + mu_o
        values.append(vi)
    keys = torch.cat([ref_k[:, i] for i in range(n)], dim=1)
    vals = torch.cat(values, dim=1)
    key_ok = torch.ones(b, keys.shape[1], dtype=torch.bool) if mask is None else mask.repeat_interleave(ref_k.shape[2], 1)
    if mode == "concat":
        keys, vals = torch.cat([k, keys], 1), torch.cat([v, vals], 1)
        key_ok = torch.cat([torch.ones(b, k.shape[1], dtype=torch.bool), key_ok], 1)
    outs, probs = [], []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = torch.einsum("bqd,bkd->bqk", q[..., sl], keys[..., sl]) / d**0.5
        if bias is not None:
            query_hw, key_hw, sigma = bias
            prior = naive_position_bias(query_hw, key_hw, sigma).repeat(1, n)
            if mode == "concat":
                prior = torch.cat([naive_position_bias(query_hw, query_hw, sigma), prior], 1)
            scores = scores + prior
        scores = scores.masked_fill(~key_ok[:, None, :], float("-inf"))
        p = torch.softmax(scores, dim=-1)
        probs.append(p)
        outs.append(torch.einsum("bqk,bkd->bqd", p, vals[..., sl]))
    out = attn.to_out[0](torch.cat(outs, dim=-1))
    return out, torch.stack(probs, dim=1)


def make_layer(channels: int, heads: int) -> Attention:
    torch.manual_seed(0)
    attn = Attention(query_dim=channels, heads=heads, dim_head=channels // heads, bias=False, out_bias=True)
    attn.set_processor(SharedAttnProcessor("layer"))
    return attn.eval()


@pytest.mark.parametrize("mode", ["refs_only", "concat"])
@pytest.mark.parametrize("use_adain", [False, True])
@pytest.mark.parametrize("n_refs", [1, 2, 5])
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_processor_matches_naive(mode, use_adain, n_refs, heads):
    channels, batch, lq, lk = 16, 2, 12, 9
    attn = make_layer(channels, heads)
    gen = torch.Generator().manual_seed(n_refs * 10 + heads)
    x = torch.randn(batch, lq, channels, generator=gen)
    ref_x = torch.randn(batch, n_refs, lk, channels, generator=gen) * 2 + 0.5
    with torch.no_grad():
        ref_k, ref_v = attn.to_k(ref_x), attn.to_v(ref_x)
        shared = SharedAttentionCall(references={"layer": (ref_k, ref_v)}, mode=mode, adain=use_adain, adain_eps=EPS,
                                 capture=frozenset({"layer"}), latent_hw=(3, 4), ref_latent_hw=(3, 3))
        out = attn(x, shared=shared)
        expected, probs = naive_shared_attention(attn, x, ref_k, ref_v, mode, use_adain)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    captured = shared.captured["layer"]
    ref_part = probs[..., lq:] if mode == "concat" else probs
    torch.testing.assert_close(captured.probs, ref_part.reshape(batch, heads, lq, n_refs, lk), rtol=1e-4, atol=1e-6)
    assert captured.query_hw == (3, 4) and captured.key_hw == (3, 3)
    total = captured.probs.sum(dim=(-1, -2)) + (captured.self_probs.sum(-1) if mode == "concat" else 0)
    torch.testing.assert_close(total, torch.ones_like(total))


@pytest.mark.parametrize("use_adain", [False, True])
def test_padding_mask_matches_naive_and_ignores_padded_values(use_adain):
    channels, heads, batch, lq, lk, n = 8, 2, 2, 6, 5, 3
    attn = make_layer(channels, heads)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(batch, lq, channels, generator=gen)
    ref_x = torch.randn(batch, n, lk, channels, generator=gen)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    with torch.no_grad():
        ref_k, ref_v = attn.to_k(ref_x), attn.to_v(ref_x)
        out = attn(x, shared=SharedAttentionCall(references={"layer": (ref_k, ref_v)}, ref_mask=mask, adain=use_adain))
        expected, _ = naive_shared_attention(attn, x, ref_k, ref_v, "refs_only", use_adain, mask)
        garbage_k, garbage_v = ref_k.clone(), ref_v.clone()
        garbage_k[~mask], garbage_v[~mask] = 1e3, -1e3
        out_garbage = attn(x, shared=SharedAttentionCall(references={"layer": (garbage_k, garbage_v)}, ref_mask=mask,
                                                     adain=use_adain))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_garbage, out)


def test_refs_only_ignores_the_image_own_keys_values():
    """eq. 4: with the image's own K/V dropped, a query sees references only, so two inputs with the
    same queries but different content give the same output."""
    channels, heads = 8, 2
    attn = make_layer(channels, heads)
    gen = torch.Generator().manual_seed(3)
    ref = torch.randn(1, 2, 5, channels, generator=gen)
    x = torch.randn(1, 4, channels, generator=gen)
    with torch.no_grad():
        kv = (attn.to_k(ref), attn.to_v(ref))
        a = attn(x, shared=SharedAttentionCall(references={"layer": kv}, adain=False))
        # Append tokens: the first 4 queries are unchanged, their outputs must be too.
        y = torch.cat([x, torch.randn(1, 3, channels, generator=gen) * 5], dim=1)
        b = attn(y, shared=SharedAttentionCall(references={"layer": kv}, adain=False))[:, :4]
        c = attn(y, shared=SharedAttentionCall(references={"layer": kv}, adain=False, mode="concat"))[:, :4]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c, atol=1e-4)


def test_no_references_is_plain_self_attention():
    attn = make_layer(8, 2)
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        plain = attn(x)
        empty = attn(x, shared=SharedAttentionCall(references={"layer": (torch.zeros(1, 0, 5, 8), torch.zeros(1, 0, 5, 8))}))
        expected, _ = naive_shared_attention(attn, x, attn.to_k(x)[:, None], attn.to_v(x)[:, None], "refs_only", False)
    torch.testing.assert_close(plain, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(empty, plain)


def test_query_chunking_gives_the_same_result():
    attn = make_layer(8, 2)
    gen = torch.Generator().manual_seed(1)
    x, ref = torch.randn(1, 10, 8, generator=gen), torch.randn(1, 3, 7, 8, generator=gen)
    with torch.no_grad():
        kv = (attn.to_k(ref), attn.to_v(ref))
        whole = attn(x, shared=SharedAttentionCall(references={"layer": kv}))
        chunked = attn(x, shared=SharedAttentionCall(references={"layer": kv}, query_chunk_size=3,
                                                 ref_mask=torch.tensor([[True, True, False]])))
        masked_whole = attn(x, shared=SharedAttentionCall(references={"layer": kv},
                                                      ref_mask=torch.tensor([[True, True, False]])))
    assert not torch.allclose(whole, chunked)
    torch.testing.assert_close(chunked, masked_whole, rtol=1e-5, atol=1e-6)


def test_adain_identity_and_target_statistics():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 50, 4, generator=gen) * 3 + 1
    torch.testing.assert_close(adain(x, *channel_stats(x)), x, rtol=1e-5, atol=1e-5)
    target = torch.randn(2, 30, 4, generator=gen) * 0.5 - 2
    y = adain(x, *channel_stats(target))
    for got, want in zip(channel_stats(y), channel_stats(target)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["refs_only", "concat"])
def test_strength_blends_shared_with_own_self_attention(mode):
    """s * (eq. 4 output) + (1 - s) * (plain self-attention), per sample; naive outputs include to_out,
    so agreement also checks that blending before the affine to_out equals blending after it."""
    channels, heads, batch, lq, lk, n = 16, 4, 3, 10, 7, 2
    attn = make_layer(channels, heads)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(batch, lq, channels, generator=gen)
    ref_x = torch.randn(batch, n, lk, channels, generator=gen) * 2
    strength = torch.tensor([0.0, 0.3, 0.8])
    with torch.no_grad():
        kv = (attn.to_k(ref_x), attn.to_v(ref_x))
        out = attn(x, shared=SharedAttentionCall(references={"layer": kv}, mode=mode, strength=strength))
        shared_out, _ = naive_shared_attention(attn, x, *kv, mode, True)
        own_out, _ = naive_shared_attention(attn, x, attn.to_k(x)[:, None], attn.to_v(x)[:, None], "refs_only", False)
        scalar = attn(x, shared=SharedAttentionCall(references={"layer": kv}, mode=mode, strength=0.3))
    s = strength[:, None, None]
    torch.testing.assert_close(out, s * shared_out + (1 - s) * own_out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scalar[1], out[1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(shared_out, own_out, atol=1e-3)  # the blend is not trivially one of them


def test_strength_one_is_bit_identical_and_zero_is_the_blind_layer():
    attn = make_layer(8, 2)
    gen = torch.Generator().manual_seed(5)
    x, ref = torch.randn(2, 6, 8, generator=gen), torch.randn(1, 3, 5, 8, generator=gen)
    with torch.no_grad():
        kv = (attn.to_k(ref), attn.to_v(ref))
        default = attn(x, shared=SharedAttentionCall(references={"layer": kv}))
        one = attn(x, shared=SharedAttentionCall(references={"layer": kv}, strength=1.0))
        ones = attn(x, shared=SharedAttentionCall(references={"layer": kv}, strength=torch.ones(2)))
        zero = attn(x, shared=SharedAttentionCall(references={"layer": kv}, strength=0.0))
        zeros = attn(x, shared=SharedAttentionCall(references={"layer": kv}, strength=torch.zeros(2)))
        blind = attn(x, shared=SharedAttentionCall())
    assert torch.equal(one, default) and torch.equal(ones, default)
    assert torch.equal(zero, blind) and torch.equal(zeros, blind)


def test_capture_at_partial_strength_records_the_shared_branch():
    attn = make_layer(8, 2)
    gen = torch.Generator().manual_seed(6)
    x, ref = torch.randn(1, 6, 8, generator=gen), torch.randn(1, 2, 5, 8, generator=gen)
    with torch.no_grad():
        kv = (attn.to_k(ref), attn.to_v(ref))
        full = SharedAttentionCall(references={"layer": kv}, capture=frozenset({"layer"}))
        half = SharedAttentionCall(references={"layer": kv}, capture=frozenset({"layer"}), strength=0.5)
        attn(x, shared=full)
        attn(x, shared=half)
    torch.testing.assert_close(half.captured["layer"].probs, full.captured["layer"].probs)
    assert half.captured["layer"].self_probs is None


@pytest.mark.parametrize("mode", ["refs_only", "concat"])
@pytest.mark.parametrize("want_probs", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_position_prior_matches_naive(mode, want_probs, masked):
    """The tiny-world locality option adds -d^2/(2 sigma^2) to every shared-attention logit, on
    both the fused (SDPA) and the probability-returning path, with and without padding."""
    channels, heads, batch, n = 8, 2, 2, 2
    attn = make_layer(channels, heads)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(batch, 12, channels, generator=gen)
    ref_x = torch.randn(batch, n, 9, channels, generator=gen)
    mask = torch.tensor([[True, True], [True, False]]) if masked else None
    with torch.no_grad():
        ref_k, ref_v = attn.to_k(ref_x), attn.to_v(ref_x)
        shared = SharedAttentionCall(references={"layer": (ref_k, ref_v)}, ref_mask=mask, mode=mode, adain=False,
                                     latent_hw=(3, 4), ref_latent_hw=(3, 3), locality=0.3,
                                     capture=frozenset({"layer"}) if want_probs else frozenset())
        out = attn(x, shared=shared)
        expected, probs = naive_shared_attention(attn, x, ref_k, ref_v, mode, False, mask, bias=((3, 4), (3, 3), 0.3))
        plain = attn(x, shared=SharedAttentionCall(references={"layer": (ref_k, ref_v)}, ref_mask=mask, mode=mode,
                                                   adain=False, latent_hw=(3, 4), ref_latent_hw=(3, 3)))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert (out - plain).abs().max() > 1e-3  # the prior changes the result
    if want_probs:
        ref_part = probs[..., 12:] if mode == "concat" else probs
        torch.testing.assert_close(shared.captured["layer"].probs, ref_part.reshape(batch, heads, 12, n, 9),
                                   rtol=1e-4, atol=1e-6)


def test_position_prior_rejects_a_non_positive_sigma():
    from instantrestore.generator.attention import position_prior
    from instantrestore.generator.config import backbone_config

    with pytest.raises(ValueError, match="sigma must be > 0"):
        position_prior((2, 2), (2, 2), 0.0)
    with pytest.raises(ValueError, match="attention_locality must be > 0"):
        backbone_config("tiny", attention_locality=-1.0)
