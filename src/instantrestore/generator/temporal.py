"""Temporal remedies for the frames of one face track: what a frame may borrow from the frame before.

Per-frame restoration with the same references and seed still lets the identity waver a little from
frame to frame (each frame is degraded differently). Three remedies, each an added term with a weight
at which the model is exactly the per-frame one (weight 0), hooked in from outside the model:

- :func:`latent_ema`: the decoder's input latent of frame t blended with frame t-1's (a causal EMA),
  through a forward pre-hook on ``vae.decoder``. The post-quant conv before it is 1x1 and affine,
  so this equals blending the generator's x0 latents.
- :func:`attention_ema`: each decoder self-attention layer's output blended with its output on
  frame t-1, through wrapper processors around the shared-attention ones.
- :func:`track_smoothing`: the two blends together (the video job's ``temporal`` option).
- :func:`append_references`: the previous restored frame's keys/values added to the reference set
  (a fifth reference, or the only one for a blind track).

In a video job the crops are aligned, so the same latent cell is about the same face point from frame
to frame; on unaligned frames :class:`TrackMemory` ``warp`` carries frame t-1 onto frame t
(``motion_theta``). The state of a track lives in a :class:`TrackMemory` the caller owns (one per
track, ``reset`` at the track's start); the hooks only read and write it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .reference_cache import ReferenceCache


@dataclass
class TrackMemory:
    """What one track carries to its next frame: the smoothed decoder latent [1, C, h, w], the smoothed
    attention outputs (layer -> [1, L, C]); ``theta`` [2, 3]: where each point of this frame was on the
    previous one (normalised coordinates, as ``F.affine_grid`` takes; None = the same place)."""

    latent: torch.Tensor | None = None
    attention: dict[str, torch.Tensor] = field(default_factory=dict)
    theta: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the previous frame (a new track, or a cut)."""
        self.latent, self.attention, self.theta = None, {}, None

    def warp(self, grid: torch.Tensor) -> torch.Tensor:
        """``grid`` [B, C, h, w] of the previous frame moved onto this one by ``theta`` (unchanged when None)."""
        if self.theta is None:
            return grid
        theta = self.theta.to(grid.device, grid.dtype)[None].expand(grid.shape[0], 2, 3)
        sample = F.affine_grid(theta, list(grid.shape), align_corners=False)
        return F.grid_sample(grid, sample, mode="bilinear", padding_mode="border", align_corners=False)


def motion_theta(m_prev: np.ndarray, m_now: np.ndarray, size: int) -> torch.Tensor:
    """[2, 3] normalised affine taking frame t's points to where they were on frame t-1, from the
    canonical -> pixel matrices [2, 3] of both frames of a ``size`` px square image."""
    to_prev, to_now = np.vstack([m_prev, [0, 0, 1]]), np.vstack([m_now, [0, 0, 1]])
    back = to_prev @ np.linalg.inv(to_now)  # pixel on t -> pixel on t-1
    norm = np.array([[2 / size, 0, 1 / size - 1], [0, 2 / size, 1 / size - 1], [0, 0, 1]])  # pixel -> [-1, 1]
    return torch.from_numpy((norm @ back @ np.linalg.inv(norm))[:2]).float()


def _blend(now: torch.Tensor, before: torch.Tensor | None, weight: float) -> torch.Tensor:
    if before is None or before.shape != now.shape or weight == 0:  # a first frame, another size, or off
        return now
    return (1 - weight) * now + weight * before


@contextlib.contextmanager
def latent_ema(model: torch.nn.Module, memory: TrackMemory, weight: float) -> Iterator[TrackMemory]:
    """While open, every VAE decode of ``model`` blends its latent with ``memory``'s (warped):
    z_t <- (1 - weight) z_t + weight z_{t-1}, and keeps the result for the next frame. One image per call."""
    weight = check_weight(weight)

    def hook(_module, args):
        z, *rest = args  # Decoder.forward(sample, latent_embeds=None)
        z = _blend(z, None if memory.latent is None else memory.warp(memory.latent), weight)
        memory.latent = z.detach()
        return (z, *rest)

    handle = model.vae.decoder.register_forward_pre_hook(hook)
    try:
        yield memory
    finally:
        handle.remove()


class TemporalAttnProcessor:
    """Wraps a decoder self-attention processor: its output [B, L, C] blended with the same layer's
    output on the previous frame of the track (warped on the token grid), weight 0 = the layer as is."""

    def __init__(self, inner, name: str, memory: TrackMemory, weight: float):
        self.inner, self.name, self.memory, self.weight = inner, name, memory, weight

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, shared=None) -> torch.Tensor:
        out = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, shared=shared)
        if shared is not None and shared.record is not None:  # the reference branch: never smoothed
            return out
        before = self.memory.attention.get(self.name)
        if before is not None and before.shape == out.shape:
            h, w = _grid(out.shape[1], shared.latent_hw if shared is not None else None)
            as_grid = lambda t: t.transpose(1, 2).reshape(t.shape[0], -1, h, w)  # noqa: E731 [B, C, h, w]
            before = self.memory.warp(as_grid(before)).reshape(out.shape[0], out.shape[2], -1).transpose(1, 2)
        out = _blend(out, before, self.weight)
        self.memory.attention[self.name] = out.detach()
        return out


def _grid(tokens: int, latent_hw: tuple[int, int] | None) -> tuple[int, int]:
    from .attention import token_grid  # here, not on top: .attention loads diffusers, the video job need not

    return token_grid(tokens, latent_hw)


@contextlib.contextmanager
def attention_ema(model: torch.nn.Module, memory: TrackMemory, weight: float) -> Iterator[TrackMemory]:
    """While open, ``model``'s injected decoder self-attention layers blend their outputs with the
    previous frame's (``TemporalAttnProcessor``); the processors are put back on exit."""
    weight = check_weight(weight)
    before = dict(model.unet.attn_processors)
    injected = {f"{name}.processor" for name in model.injected_layers}
    wrapped = {key: (TemporalAttnProcessor(proc, key.removesuffix(".processor"), memory, weight) if key in injected
                     else proc) for key, proc in before.items()}
    if sum(isinstance(p, TemporalAttnProcessor) for p in wrapped.values()) != len(injected):
        raise ValueError(f"expected {len(injected)} injected layers among the UNet's processors")
    model.unet.set_attn_processor(wrapped)
    try:
        yield memory
    finally:
        model.unet.set_attn_processor(before)


@contextlib.contextmanager
def track_smoothing(model: torch.nn.Module, memory: TrackMemory, weight: float) -> Iterator[TrackMemory]:
    """Both blends at ``weight`` (``attention_ema`` and ``latent_ema``, one memory): what the video job's
    ``temporal`` option runs, the pair that measured best on the synthetic clips (docs/video.md)."""
    with attention_ema(model, memory, weight), latent_ema(model, memory, weight):
        yield memory


def append_references(cache: ReferenceCache | None, extra: ReferenceCache) -> ReferenceCache:
    """``cache``'s references followed by ``extra``'s (e.g. the previous restored frame, encoded by
    ``model.encode_references``); ``extra`` alone when ``cache`` is None. Both from the same model."""
    if cache is None:
        return extra
    if cache.model_key != extra.model_key or cache.layers != extra.layers:
        raise ValueError("append_references: the two caches were encoded by different models or settings")
    return replace(cache, keys={n: torch.cat([cache.keys[n], extra.keys[n].to(cache.keys[n])]) for n in cache.keys},
                   values={n: torch.cat([cache.values[n], extra.values[n].to(cache.values[n])]) for n in cache.values})


def check_weight(weight: float) -> float:
    """``weight`` as a float, or ValueError unless in [0, 1) (0 = each frame alone; 1 would never change)."""
    weight = float(weight)
    if not 0 <= weight < 1:
        raise ValueError(f"temporal weight must be in [0, 1) (0 = each frame alone), got {weight}")
    return weight
