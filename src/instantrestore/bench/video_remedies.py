"""The ways ``bench.video`` restores a clip's frames: per frame, or with one temporal remedy.

Each remedy has a weight; at weight 0 it is the per-frame restoration (what the video job does).

- ``per-frame``: each frame alone, the same references and seed.
- ``output ema``: the restored frames blended with the previous output warped by the known motion
  (``blend_previous``).
- ``latent ema`` / ``attention ema``: ``generator.temporal.latent_ema`` / ``attention_ema``, the
  previous frame's state warped by the known motion (``generator.temporal.motion_theta``).
- ``attention+latent ema``: both at the same weight (``generator.temporal.track_smoothing``, the video
  job's ``temporal`` option).
- ``previous frame ref``: the previous restored frame encoded by the reference branch and added to
  the references (``generator.temporal.append_references``; a blind clip gets it as its only one).
- ``input window``: each degraded frame averaged with its two neighbours warped onto it (weight w on
  the neighbours together) before restoring: a multi-frame denoise of the input.
"""
from __future__ import annotations

import contextlib

import cv2
import numpy as np
import torch

from ..generator import temporal
from ..generator.model import InstantRestore
from ..generator.reference_cache import ReferenceCache
from ..utils.images import uint8_to_tensor
from .cases import to_uint8

REMEDIES = ("per-frame", "output ema", "latent ema", "attention ema", "attention+latent ema", "previous frame ref",
            "input window", "latent window")


def warp_onto(image: np.ndarray, m_from: np.ndarray, m_to: np.ndarray) -> np.ndarray:
    """``image`` (S, S, C) of one frame moved onto another by the head motion (canonical -> pixel matrices)."""
    motion = (np.vstack([m_to, [0, 0, 1]]) @ np.linalg.inv(np.vstack([m_from, [0, 0, 1]])))[:2]
    size = image.shape[0]
    return cv2.warpAffine(image, motion, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def blend_previous(restored: list[np.ndarray], matrices: list[np.ndarray], weight: float) -> list[np.ndarray]:
    """Temporal EMA: out_t = (1 - weight) * restored_t + weight * warp(out_{t-1}); weight 0 = unchanged."""
    if weight <= 0:
        return restored
    out = [restored[0]]
    for t in range(1, len(restored)):
        prev = warp_onto(out[-1], matrices[t - 1], matrices[t]).astype(np.float32)
        out.append(np.clip((1 - weight) * restored[t] + weight * prev, 0, 255).round().astype(np.uint8))
    return out


def average_inputs(degraded: list[np.ndarray], matrices: list[np.ndarray], weight: float) -> list[np.ndarray]:
    """Each frame (1 - w) itself + w/2 each neighbour warped onto it (an end frame: w on its one neighbour)."""
    out = []
    for t, image in enumerate(degraded):
        near = [warp_onto(degraded[s], matrices[s], matrices[t]).astype(np.float32)
                for s in (t - 1, t + 1) if 0 <= s < len(degraded)]
        mixed = (1 - weight) * image.astype(np.float32) + weight * sum(near) / len(near)
        out.append(np.clip(mixed, 0, 255).round().astype(np.uint8))
    return out


def _latent_window(model: InstantRestore, latents: list[torch.Tensor], matrices: list[np.ndarray], size: int,
                   weight: float) -> list[np.ndarray]:
    """Decode each decoder latent [1, C, h, w] averaged with its neighbours' warped onto it (weight w on them
    together); ``size``: the frames' side in pixels (the motion is in pixels, the warp in normalised units)."""
    out = []
    for t, z in enumerate(latents):
        near = [temporal.TrackMemory(theta=temporal.motion_theta(matrices[s], matrices[t], size)).warp(latents[s])
                for s in (t - 1, t + 1) if 0 <= s < len(latents)]
        mixed = (1 - weight) * z + weight * sum(near) / len(near)
        out.append(to_uint8(model.vae.decoder(mixed).clamp(-1, 1)))
    return out


@torch.inference_mode()
def restore_clip(model: InstantRestore, degraded: list[np.ndarray], matrices: list[np.ndarray],
                 cache: ReferenceCache | None, remedy: str = "per-frame", weight: float = 0.0, seed: int = 0
                 ) -> list[np.ndarray]:
    """Restore the frames (uint8 RGB at the model's size) one at a time, in order, with ``remedy`` at
    ``weight``; ``cache`` None = blind. Returns the restored frames, uint8 RGB."""
    if remedy not in REMEDIES:
        raise ValueError(f"unknown remedy {remedy!r}; choose from {REMEDIES}")
    size = degraded[0].shape[0]
    frames = average_inputs(degraded, matrices, weight) if remedy == "input window" else degraded
    lq = uint8_to_tensor(tuple(frames)).to(model.device)
    memory = temporal.TrackMemory()
    hooks = {"latent ema": [temporal.latent_ema], "attention ema": [temporal.attention_ema],
             "attention+latent ema": [temporal.track_smoothing]}
    outputs: list[np.ndarray] = []
    kept: list[torch.Tensor] = []  # the decoder latents, for the centred window
    with contextlib.ExitStack() as stack:
        for hook in hooks.get(remedy, []):
            stack.enter_context(hook(model, memory, weight))
        if remedy == "latent window":
            handle = model.vae.decoder.register_forward_pre_hook(lambda _m, args: kept.append(args[0].detach()))
            stack.callback(handle.remove)
        for t in range(len(frames)):
            generator = torch.Generator(model.device).manual_seed(seed) if model.samples_noise else None
            memory.theta = temporal.motion_theta(matrices[t - 1], matrices[t], size) if t else None
            refs = cache
            if remedy == "previous frame ref" and t:
                refs = temporal.append_references(cache, model.encode_references(out))
            out = model(lq[t:t + 1], references=refs, generator=generator).image
            outputs.append(to_uint8(out))
    if remedy == "latent window":
        return _latent_window(model, kept, matrices, size, weight)
    return blend_previous(outputs, matrices, weight) if remedy == "output ema" else outputs
