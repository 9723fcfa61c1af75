"""Shared-image attention (paper sec. 3.3, eq. 4-6) as diffusers attention processors.

In the generator's decoder self-attention layers the degraded image's queries attend to
the concatenated keys/values of all references; its own keys/values are dropped
(``refs_only``), or kept beside them (``concat``, the prior-work variant). With AdaIN each
reference's values take the per-channel statistics of the image's own values. The frozen
reference branch runs the same layers in *record* mode and hands back its keys/values.

Per-call inputs and outputs travel in a :class:`SharedAttentionCall` object passed as
``cross_attention_kwargs={"shared": ...}``; processors keep no state of their own.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Literal

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from .adain import adain, channel_stats
from .attention_kernel import attend, split_heads

DECODER_SELF_ATTENTION = re.compile(r"^up_blocks\.\d+\.attentions\.\d+\.transformer_blocks\.\d+\.attn1\.processor$")


@dataclass(frozen=True)
class CapturedAttention:
    """Attention probabilities of one layer, kept only when asked for.

    probs: [B, heads, Lq, N, Lk] - the mass each query puts on each reference token (rows sum
    to 1 over (N, Lk) in ``refs_only`` mode; in ``concat`` mode the rest is in ``self_probs``).
    """

    probs: torch.Tensor
    query_hw: tuple[int, int]
    key_hw: tuple[int, int]
    self_probs: torch.Tensor | None = None


@dataclass
class SharedAttentionCall:
    """What one UNet call needs from, and gives back to, the shared-attention processors.

    references: layer name -> (keys, values), each [B or 1, N, Lk, C], from the reference branch.
    ref_mask: [B or 1, N] bool, True for real references (False = padding); None = all real.
    record: when not None, processors run plain self-attention and store their (keys, values)
        [B, L, C] here under their layer name (the reference branch).
    capture: layer names whose attention probabilities are returned in ``captured``.
    latent_hw / ref_latent_hw: the UNet input sizes, to give each layer's token grid its shape.
    strength: reference strength s in [0, 1], a float or a tensor broadcastable to [B, 1, 1].
        With references, a layer outputs s * (shared attention) + (1 - s) * (its own plain
        self-attention); 1 = the paper's layer (the self-attention is then never computed),
        0 = the blind layer. ``captured`` holds the shared branch's probabilities, unweighted:
        the output takes s times that mass on the references (1 - s on the image's own tokens).
    locality: a tiny-world option (None in the paper's model): sigma, as a fraction of the image
        side, of a Gaussian position prior added to the shared attention's logits (see
        :func:`position_prior`).
    """

    references: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    ref_mask: torch.Tensor | None = None
    mode: Literal["refs_only", "concat"] = "refs_only"
    adain: bool = True
    adain_eps: float = 1e-5
    adain_std: str = "biased"
    record: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    capture: frozenset[str] = frozenset()
    captured: dict[str, CapturedAttention] = field(default_factory=dict)
    latent_hw: tuple[int, int] | None = None
    ref_latent_hw: tuple[int, int] | None = None
    query_chunk_size: int | None = None
    strength: float | torch.Tensor = 1.0
    locality: float | None = None

    def full_strength(self) -> bool:
        """True when the blend is a no-op (s == 1 everywhere): the paper's path, bit for bit."""
        if isinstance(self.strength, torch.Tensor):
            return bool((self.strength == 1).all())
        return self.strength == 1


def token_grid(tokens: int, latent_hw: tuple[int, int] | None) -> tuple[int, int]:
    """(h, w) of a layer's token grid, from its token count and the UNet input size."""
    if latent_hw is None:
        side = int(round(tokens**0.5))
        return side, tokens // max(side, 1)
    h0, w0 = latent_hw
    factor = round((h0 * w0 / tokens) ** 0.5)
    return h0 // factor, w0 // factor


class PassThroughAttnProcessor(AttnProcessor2_0):
    """diffusers' standard processor that also accepts (and ignores) the ``shared`` argument,
    so layers outside the decoder self-attention behave exactly as before."""

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 shared: SharedAttentionCall | None = None, *args, **kwargs) -> torch.Tensor:
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


class SharedAttnProcessor:
    """Decoder self-attention that reads the references' keys/values (eq. 4), with AdaIN (eq. 5-6).

    Holds only its layer name. Without references (or ``shared=None``) it is plain
    self-attention, so a blind restoration uses the unchanged layer.
    """

    def __init__(self, name: str):
        self.name = name

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 shared: SharedAttentionCall | None = None) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(f"{self.name}: shared attention is for self-attention layers without masks")
        if hidden_states.ndim != 3 or attn.spatial_norm is not None or attn.group_norm is not None:
            raise ValueError(f"{self.name}: expected a transformer self-attention layer on [B, L, C] tokens")
        residual = hidden_states
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        if attn.norm_q is not None:
            query, key = attn.norm_q(query), attn.norm_k(key)

        if shared is not None and shared.record is not None:
            shared.record[self.name] = (key, value)
        references = None if shared is None or shared.references is None else shared.references.get(self.name)
        if references is None or references[0].shape[1] == 0:
            out = self._self_attention(attn, query, key, value, shared)
        else:
            out = self._shared_attention(attn, query, key, value, references, shared)
            if not shared.full_strength():
                out = self._blend(attn, out, query, key, value, shared)

        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _blend(self, attn: Attention, shared_out: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
               value: torch.Tensor, shared: SharedAttentionCall) -> torch.Tensor:
        """s * shared + (1 - s) * own self-attention, on the heads' output [B, Lq, C] before to_out.

        Why this scheme: in ``refs_only`` mode it is exactly an attention over the image's own tokens
        and the references' together whose rows give mass s to the references (split as the shared
        softmax splits it) and 1 - s to the own tokens (split as plain self-attention does) - still
        a convex combination of value vectors, the kind of input to_out was trained on, and at s = 0
        the untouched blind layer. Why before to_out: to_out[0] is affine, W x + b, and the weights
        sum to 1, so s (W a + b) + (1 - s)(W c + b) = W (s a + (1 - s) c) + b - the same result for
        one matmul instead of two (to_out[1] is dropout: identity at inference).
        """
        s = shared.strength
        if isinstance(s, torch.Tensor):
            s = s.to(shared_out.device, shared_out.dtype).reshape(-1, 1, 1)  # [B | 1, 1, 1]
        # The shared branch's probabilities are already captured; the own map is not recorded.
        own = self._attend_own(attn, query, key, value, shared.query_chunk_size, want=False)[0]
        return s * shared_out + (1 - s) * own

    def _attend_own(self, attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    chunk: int | None, want: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Plain self-attention: [B, Lq, C] output and, if ``want``, probs [B, heads, Lq, Lq]."""
        heads = attn.heads
        out, probs = attend(split_heads(query, heads), split_heads(key, heads), split_heads(value, heads),
                            None, attn.scale, want, chunk)
        return out.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1), probs

    def _self_attention(self, attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        shared: SharedAttentionCall | None) -> torch.Tensor:
        want = shared is not None and self.name in shared.capture
        out, probs = self._attend_own(attn, query, key, value, shared.query_chunk_size if shared else None, want)
        if want:
            hw = token_grid(query.shape[1], shared.latent_hw)
            # Blind: no reference tokens; the self map is all there is.
            shared.captured[self.name] = CapturedAttention(probs.new_zeros(*probs.shape[:3], 0, 0), hw, hw, probs)
        return out

    def _shared_attention(self, attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          references: tuple[torch.Tensor, torch.Tensor], shared: SharedAttentionCall) -> torch.Tensor:
        batch, lq, _ = query.shape
        ref_keys, ref_values = references  # [B|1, N, Lk, C]
        n_refs, lk = ref_keys.shape[1], ref_keys.shape[2]
        if shared.adain:
            # eq. 5: each reference's values get the image's own value statistics (over tokens).
            own_mean, own_std = channel_stats(value, shared.adain_eps, shared.adain_std)  # [B, 1, C]
            ref_values = adain(ref_values, own_mean[:, None], own_std[:, None], shared.adain_eps, shared.adain_std)
        ref_keys = ref_keys.expand(batch, -1, -1, -1).reshape(batch, n_refs * lk, -1)
        ref_values = ref_values.expand(batch, -1, -1, -1).reshape(batch, n_refs * lk, -1)
        key_mask = None
        if shared.ref_mask is not None and not bool(shared.ref_mask.all()):
            key_mask = shared.ref_mask.to(torch.bool).expand(batch, -1).repeat_interleave(lk, dim=1)
        if shared.mode == "concat":
            ref_keys = torch.cat([key, ref_keys], dim=1)
            ref_values = torch.cat([value, ref_values], dim=1)
            if key_mask is not None:
                key_mask = torch.cat([key_mask.new_ones(batch, lq), key_mask], dim=1)
        elif key_mask is not None and not bool(key_mask.any(dim=1).all()):
            raise ValueError(f"{self.name}: a sample has no valid reference; pass it without references instead")

        heads = attn.heads
        want = self.name in shared.capture
        query_hw, key_hw = token_grid(lq, shared.latent_hw), token_grid(lk, shared.ref_latent_hw or shared.latent_hw)
        bias = None
        if shared.locality is not None:
            bias = _cached_position_prior(query_hw, key_hw, shared.locality, query.device).repeat(1, n_refs)
            if shared.mode == "concat":
                own = _cached_position_prior(query_hw, query_hw, shared.locality, query.device)
                bias = torch.cat([own, bias], dim=1)
        out, probs = attend(split_heads(query, heads), split_heads(ref_keys, heads), split_heads(ref_values, heads),
                             key_mask, attn.scale, want, shared.query_chunk_size, bias=bias)
        if want:
            self_probs = None
            if shared.mode == "concat":
                self_probs, probs = probs[..., :lq], probs[..., lq:]
            shared.captured[self.name] = CapturedAttention(probs.reshape(batch, heads, lq, n_refs, lk),
                                                           query_hw, key_hw, self_probs)
        return out.transpose(1, 2).reshape(batch, lq, -1)


def position_prior(query_hw: tuple[int, int], key_hw: tuple[int, int], sigma: float,
                   device: torch.device | None = None) -> torch.Tensor:
    """Logit bias [Lq, Lk] = -d^2 / (2 sigma^2), d the distance between a query's and a key's
    token centres in image-side units (so one sigma serves every layer's grid).

    Why (tiny world only): SD-Turbo's pretrained features already say which face part a token
    is, so its attention can match parts between photos; a small UNet trained for minutes on CPU
    has no such features (its q/k gradients for the landmark loss are ~0). In aligned face crops
    a part sits at about the same place in every photo, so this prior stands in for that
    knowledge: the content-based logits then only choose within a neighbourhood.
    """
    if sigma <= 0:
        raise ValueError(f"locality sigma must be > 0, got {sigma}")

    def centres(hw: tuple[int, int]) -> torch.Tensor:
        ys = (torch.arange(hw[0], device=device, dtype=torch.float32) + 0.5) / hw[0]
        xs = (torch.arange(hw[1], device=device, dtype=torch.float32) + 0.5) / hw[1]
        return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)

    return -torch.cdist(centres(query_hw), centres(key_hw)).pow(2) / (2.0 * sigma**2)


@functools.lru_cache(maxsize=32)
def _cached_position_prior(query_hw: tuple[int, int], key_hw: tuple[int, int], sigma: float,
                           device: torch.device) -> torch.Tensor:
    """:func:`position_prior`, computed once per grid pair, sigma and device: every injected layer of
    every UNet call needs the same few maps. Callers only read it (repeat / cat / slices copy)."""
    return position_prior(query_hw, key_hw, sigma, device)


def decoder_self_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Processor keys of the UNet decoder's self-attention layers (9 in SD-Turbo), in order."""
    return [name for name in unet.attn_processors if DECODER_SELF_ATTENTION.match(name)]


def install_shared_attention(unet: torch.nn.Module, expected: int | None = None) -> list[str]:
    """Put SharedAttnProcessor on every decoder self-attention layer and a pass-through
    processor everywhere else; return the injected attention-module names (without
    ``.processor``). Raises if ``expected`` is given and the count differs."""
    injected = decoder_self_attention_layers(unet)
    if not injected:
        raise ValueError("this UNet has no decoder self-attention layers to share")
    if expected is not None and len(injected) != expected:
        raise ValueError(f"expected {expected} decoder self-attention layers, found {len(injected)}: {injected}")
    names = [key.removesuffix(".processor") for key in injected]
    processors = {key: (SharedAttnProcessor(key.removesuffix(".processor")) if key in injected
                        else PassThroughAttnProcessor()) for key in unet.attn_processors}
    unet.set_attn_processor(processors)
    return names
