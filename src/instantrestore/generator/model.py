"""``InstantRestore``: the one-step generator (its method is :class:`~.one_step.OneStepGenerator`)
with the ways to build, load and save it, its state and fingerprints, and :meth:`~InstantRestore.restore`,
the convenience call on images.

Building and saving are done by :mod:`.model_io`, the authors' files by :mod:`instantrestore.official`
(imported when :meth:`~InstantRestore.from_official` is called; it builds the method class, never
this one, so the two packages do not import each other).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from . import fingerprints, inference, model_io, state
from .config import ModelConfig
from .inputs import NO_REFERENCES, ImageLike, check_strength, is_single_image
from .one_step import GeneratorOutput, OneStepGenerator
from .reference_cache import ReferenceCache
from ..utils.images import tensor_to_pil

__all__ = ["GeneratorOutput", "ImageLike", "InstantRestore", "check_strength"]


class InstantRestore(OneStepGenerator):
    """Single-step personalised face restoration with shared-image attention."""

    # ------------------------------------------------------------------ building, loading, saving
    @classmethod
    def from_config(cls, config: str | ModelConfig = "tiny", seed: int = 0, **overrides) -> "InstantRestore":
        """Random weights of a named backbone (``"tiny"`` or ``"sd-turbo"``; see
        :data:`~.backbones.BACKBONES`) or a ModelConfig; no download.

        The same seed gives the same weights; the caller's global RNG state is left untouched.
        """
        return model_io.build_random(cls, config, seed, **overrides)

    @classmethod
    def from_base(cls, base_model: str, vae: str | None = None, prompt: str | None = None,
                  trust_pickle: bool = False, **overrides) -> "InstantRestore":
        """Fresh adapters over pretrained base weights (a hub id such as ``stabilityai/sd-turbo``
        or a local diffusers directory), optionally with a separate VAE."""
        return model_io.build_from_base(cls, base_model, vae, prompt, trust_pickle, **overrides)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, trust_pickle: bool = False, base_model: str | None = None,
                        device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "InstantRestore":
        """Load a checkpoint written by :meth:`save_pretrained` (or, for a diffusers base model
        directory / hub id, start fresh adapters on it with :meth:`from_base`).

        ``base_model`` overrides where a checkpoint without bundled base weights finds them.
        """
        return model_io.load_pretrained(cls, path, trust_pickle, base_model, device, dtype)

    @classmethod
    def from_official(cls, path: str | os.PathLike, **kwargs) -> "InstantRestore":
        """One of the authors' released files (``final_model_ckpt.pt`` and the ablations, or a
        ``save_model`` adapter file), in the ``official`` profile that reproduces their inference;
        ``hf://owner/repo/file`` is downloaded first. Keywords: see :func:`instantrestore.official.load_official`."""
        from ..official import load_official, resolve_checkpoint

        return load_official(cls, resolve_checkpoint(str(path)), **kwargs)

    def save_pretrained(self, directory: str | os.PathLike, include_base: bool | None = None) -> None:
        """Write config.json + adapters.safetensors (+ base.safetensors when the base weights
        cannot be fetched from ``config.base_model``, e.g. the tiny backbone), each recording the
        digests of its tensors so that loading needs no hashing for the fingerprint."""
        if inference.adapters_merged(self):
            raise ValueError("this model's LoRA is merged into its base weights (optimize_for_inference); "
                             "save it before optimizing, or call instantrestore.generator.inference.unmerge_adapters first")
        model_io.save_pretrained(self, directory, include_base)

    # ------------------------------------------------------------------ state
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained tensors: LoRA weights, the VAE encoder's first conv, and the prompt embedding."""
        return state.adapter_state_dict(self)

    def base_state_dict(self, keep_vars: bool = False) -> dict[str, torch.Tensor]:
        """Base UNet/VAE weights under diffusers' own names (prefixed ``unet.``/``vae.``)."""
        return state.base_state_dict(self, keep_vars)

    def load_adapter_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy trained tensors (as :meth:`adapter_state_dict` names them) into the model."""
        state.load_adapter_state(self, tensors)

    def load_base_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy base weights (as :meth:`base_state_dict` names them) into the model."""
        state.load_base_state(self, tensors)

    def weights_fingerprint(self) -> str:
        """Fingerprint of the reference branch's weights (base UNet and VAE, prompt embedding): the
        same for the same values on any machine, thread count or device (see :mod:`.fingerprints`)."""
        return fingerprints.weights_fingerprint(self)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that receive gradients: the LoRA adapters and the VAE encoder's first conv."""
        return [p for p in self.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ speed
    def optimize_for_inference(self, precision: str = "auto", merge: bool | None = None,
                               channels_last: bool | None = None, fp32_decoder: bool | str | None = None) -> dict:
        """Make this model fast for inference on its device, in place (see :mod:`.inference`):
        ``precision`` "auto" (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), "fp32" (the
        exact path), "bf16" or "fp16"; LoRA merged and channels-last unless "fp32" is asked; for bf16
        on a CPU the VAE decoder (without AMX) or its output layers (with AMX) in fp32. Returns what was
        applied. Merging keeps the reference key, so caches encoded before still fit in fp32; a new
        precision has its own key (the caches are encoded again in it)."""
        return inference.optimize(self, precision, merge, channels_last, fp32_decoder)

    def train(self, mode: bool = True) -> "InstantRestore":
        """``nn.Module.train``; a model optimized with merged LoRA is unmerged first (it cannot train)."""
        if mode and inference.adapters_merged(self):
            inference.unmerge_adapters(self)
        return super().train(mode)

    # ------------------------------------------------------------------ convenience
    @torch.inference_mode()
    def restore(self, lq: ImageLike | Sequence[ImageLike] | torch.Tensor,
                references: ReferenceCache | Sequence[ImageLike] | torch.Tensor | None = None,
                seed: int = 0, noises: dict[str, torch.Tensor] | None = None, strength: float = 1.0
                ) -> torch.Tensor | Image.Image | list[Image.Image]:
        """Restore aligned face crop(s) in one pass. Tensors in -> tensor [B, 3, H, W] out; a PIL
        image / path in -> a PIL image out (lists give lists). ``references``: a cache, reference
        images, or None for blind restoration (an empty list is an error). ``seed`` / ``noises``:
        the random draws of a sampling profile (``official``); this project's profile draws none.
        ``strength``: how much the references steer the result, in [0, 1] (1 = the paper's model,
        0 = blind; :func:`instantrestore.pipeline.strength.resolve_strength` turns ``"auto"`` into a value)."""
        strength = check_strength(strength)
        as_tensor, single = isinstance(lq, torch.Tensor), is_single_image(lq)
        batch = self.image_batch(lq, "lq")
        if batch.shape[0] == 0:
            raise ValueError("lq: no image given")
        if references is not None and not isinstance(references, ReferenceCache):
            references = self.image_batch(references, "references")
            if references.shape[0] == 0:
                raise ValueError(NO_REFERENCES)
        generator = torch.Generator(self.device).manual_seed(seed) if self.samples_noise else None
        was_training = self.training
        self.eval()
        try:
            out = self(batch, references=references, generator=generator, noises=noises, strength=strength).image
        finally:
            self.train(was_training)
        if as_tensor:
            return out
        images = tensor_to_pil(out)
        return images[0] if single else images
