"""The one-step InstantRestore generator's method (paper sec. 3.2-3.3, appendix A).

forward reads as the method: VAE-encode the degraded image, one UNet step at a fixed
timestep whose decoder self-attention reads the references' keys/values, x0 from the
scheduler's one-step formula, VAE-decode. The reference branch is the same UNet and VAE
with the LoRA adapters switched off, so no second copy of the weights is held.

Building, loading and saving are in :mod:`.model` (the public ``InstantRestore``) and
:mod:`.model_io`; argument checks in :mod:`.inputs`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn

from . import fingerprints
from .adapters import adapters_disabled, add_generator_adapters
from .attention import CapturedAttention, SharedAttentionCall, install_shared_attention
from .backbones import get_backbone
from .config import ModelConfig
from .inputs import NO_REFERENCES, ImageLike, check_size, check_strength, image_batch, reference_mask, timestep_batch
from .noise import NoiseDraws
from .reference_cache import ReferenceCache
from ..utils.images import check_image_tensor


@dataclass
class GeneratorOutput:
    """image: [B, 3, H, W] in [-1, 1]; attention: captured layers only (see CapturedAttention)."""

    image: torch.Tensor
    attention: dict[str, CapturedAttention] = field(default_factory=dict)


class OneStepGenerator(nn.Module):
    """Single-step personalised face restoration with shared-image attention (the method alone)."""

    def __init__(self, config: ModelConfig, unet: UNet2DConditionModel, vae: AutoencoderKL, prompt_embeds: torch.Tensor):
        super().__init__()
        self.config = config
        self.unet = unet.requires_grad_(False)
        self.vae = vae.requires_grad_(False)
        self.register_buffer("prompt_embeds", prompt_embeds.detach().clone())
        alphas = DDPMScheduler.from_config(config.schedule).alphas_cumprod
        self.register_buffer("alphas_cumprod", alphas.float(), persistent=False)
        add_generator_adapters(self.unet, self.vae, config)
        if config.freeu:  # the official model runs FreeU in both branches
            self.unet.enable_freeu(**config.freeu)
        expected = get_backbone(config.backbone).injected_layers
        self.injected_layers: list[str] = install_shared_attention(self.unet, expected=expected)

    def to(self, *args, **kwargs) -> "OneStepGenerator":
        """``nn.Module.to``, keeping the weights' fingerprints: a move changes no value, and a cast to
        the precision a checkpoint was stored in has a recorded digest. The moved tensors are
        ordinary ones even under ``torch.inference_mode``, so their version counters still work."""
        with fingerprints.kept_across_move(self), torch.inference_mode(False):
            return super().to(*args, **kwargs)

    @property
    def device(self) -> torch.device:
        """Where the weights are (the prompt embedding's device)."""
        return self.prompt_embeds.device

    @property
    def dtype(self) -> torch.dtype:
        """The weights' precision (the prompt embedding's dtype)."""
        return self.prompt_embeds.dtype

    @property
    def samples_noise(self) -> bool:
        """Whether inference draws random numbers (the official profile does; this project's does not)."""
        cfg = self.config
        return cfg.latent_sampling == "sample" or cfg.inference_noise or cfg.reference_noise

    @property
    def latent_channels(self) -> int:
        """Channels of the VAE latent."""
        return self.config.vae["latent_channels"]

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (VAE and UNet downsampling)."""
        return self.config.vae_scale * 2 ** (len(self.config.unet["down_block_types"]) - 1)

    def image_batch(self, images: ImageLike | Sequence[ImageLike] | torch.Tensor, name: str = "images") -> torch.Tensor:
        """What :meth:`restore` does to its inputs: aligned crops (resized to the model's size) or a
        tensor in [-1, 1] -> [B, 3, H, W] on the model's device and dtype."""
        return image_batch(images, self.config.image_size, self.device, self.dtype, name)

    # ------------------------------------------------------------------ building blocks
    def _timesteps(self, timesteps: torch.Tensor | int | None, batch: int) -> torch.Tensor:
        return timestep_batch(self.config.timestep if timesteps is None else timesteps, batch, self.device)

    def _alpha(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod.to(self.dtype)[timesteps].view(-1, 1, 1, 1)

    def _check_size(self, images: torch.Tensor, name: str) -> None:
        check_size(images, self.size_multiple, name, self.config.backbone, self.config.image_size)

    def encode_latents(self, images: torch.Tensor, draws: NoiseDraws | None = None,
                       name: str = "input_posterior") -> torch.Tensor:
        """VAE latents, scaled: [B, 3, H, W] in [-1, 1] -> [B, C, H/8, W/8]. The posterior mean
        (deterministic, as a restoration needs), or with ``config.latent_sampling == "sample"`` and
        ``draws`` given, a posterior sample (the official profile) whose noise is ``draws[name]``."""
        dist = self.vae.encode(images).latent_dist
        return self._posterior(dist.mean, dist.std, draws, name) * self.config.vae["scaling_factor"]

    def _posterior(self, mean: torch.Tensor, std: torch.Tensor, draws: NoiseDraws | None, name: str) -> torch.Tensor:
        if self.config.latent_sampling == "sample" and draws is not None:
            return mean + std * draws.normal(name, mean)  # diffusers' DiagonalGaussianDistribution.sample
        return mean

    def _noised(self, latents: torch.Tensor, t: torch.Tensor, draws: NoiseDraws | None, name: str) -> torch.Tensor:
        """The forward process at ``t``: with noise drawn as ``randn_like`` (official profile), else zero noise."""
        alpha = self._alpha(t)
        if draws is None:
            return alpha.sqrt() * latents
        noise = draws.normal(name, latents, keep_layout=True)
        draws.discard(latents)  # the scheduler step after this UNet call draws noise it never uses
        return alpha.sqrt() * latents + (1 - alpha).sqrt() * noise

    def autoencode(self, images: torch.Tensor) -> torch.Tensor:
        """VAE round trip (encode to the posterior mean, decode), no UNet: what the tiny recipe's
        autoencoder stage trains, and the ceiling on detail any restoration can reach."""
        return self.vae.decode(self.encode_latents(images) / self.config.vae["scaling_factor"]).sample

    @torch.no_grad()
    def set_latent_scale(self, images: torch.Tensor) -> float:
        """Set ``vae.scaling_factor`` so the latents of ``images`` have unit root-mean-square, as
        SD's 0.18215 does for its VAE; the UNet's noise schedule assumes latents of that size."""
        latents = self.encode_latents(images.to(self.device, self.dtype)) / self.config.vae["scaling_factor"]
        scale = float(1.0 / latents.float().pow(2).mean().sqrt().clamp_min(1e-8))
        self.config = self.config.replace(vae={**self.config.vae, "scaling_factor": scale})
        return scale

    def _unet(self, latents: torch.Tensor, timesteps: torch.Tensor, shared: SharedAttentionCall) -> torch.Tensor:
        prompt = self.prompt_embeds.expand(latents.shape[0], -1, -1)
        extra = get_backbone(self.config.backbone).unet_inputs  # e.g. SDXL's added_cond_kwargs
        return self.unet(latents, timesteps, encoder_hidden_states=prompt, cross_attention_kwargs={"shared": shared},
                         **(extra(self, latents.shape[0]) if extra else {})).sample

    # ------------------------------------------------------------------ the reference branch
    @torch.no_grad()
    def reference_keys_values(self, refs: torch.Tensor, timesteps: torch.Tensor | int | None = None,
                              draws: NoiseDraws | None = None
                              ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], tuple[int, int]]:
        """The reference branch: the frozen UNet and VAE (adapters off) on the reference latents,
        noise-free (or, in the official profile with ``draws``, sampled and noised at t=1).

        refs: [M, 3, H, W] in [-1, 1]; timesteps: one per reference (default
        ``config.branch_timestep``). Returns (layer -> (keys, values) each [M, L, C], latent (h, w)).
        """
        timesteps = self._timesteps(self.config.branch_timestep if timesteps is None else timesteps, refs.shape[0])
        step = max(1, self.config.reference_batch_size)
        starts = range(0, refs.shape[0], step)
        chunks: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in self.injected_layers}
        with adapters_disabled(self.unet, self.vae):
            dists = [self.vae.encode(refs[start:start + step]).latent_dist for start in starts]
            cat = (lambda xs: xs[0]) if len(dists) == 1 else torch.cat  # one draw for all, in the official order
            latents = self._posterior(cat([d.mean for d in dists]), cat([d.std for d in dists]), draws,
                                      "refs_posterior") * self.config.vae["scaling_factor"]
            latents = self._noised(latents, timesteps, draws if self.config.reference_noise else None, "refs_noise")
            for start in starts:
                shared = SharedAttentionCall(record={})
                self._unet(latents[start:start + step], timesteps[start:start + step], shared)
                for name in self.injected_layers:
                    chunks[name].append(shared.record[name])
        kv = {name: (torch.cat([k for k, _ in parts]), torch.cat([v for _, v in parts])) for name, parts in chunks.items()}
        return kv, (latents.shape[-2], latents.shape[-1])

    def encode_references(self, references: Sequence[ImageLike] | torch.Tensor,
                          draws: NoiseDraws | None = None) -> ReferenceCache:
        """Encode a reference set once: PIL images / paths (resized to the model's size) or a
        tensor [N, 3, H, W] in [-1, 1]. Returns a :class:`ReferenceCache` for :meth:`restore`,
        stamped with this model's reference key. A sampling profile draws from ``draws``
        (default: a generator seeded with 0)."""
        refs = self.image_batch(references, "references")
        if refs.shape[0] == 0:
            raise ValueError(NO_REFERENCES)
        self._check_size(refs, "references")
        if draws is None and self.samples_noise:
            draws = NoiseDraws(torch.Generator().manual_seed(0))
        kv, latent_hw = self.reference_keys_values(refs, draws=draws)
        settings = fingerprints.reference_settings(self)
        return ReferenceCache(keys={n: k.detach() for n, (k, _) in kv.items()},
                              values={n: v.detach() for n, (_, v) in kv.items()},
                              backbone=self.config.backbone, weights_fingerprint=settings["weights"],
                              timestep=self.config.branch_timestep, latent_hw=latent_hw, image_hw=tuple(refs.shape[-2:]),
                              model_key=fingerprints.settings_key(settings), settings=settings)

    def _check_cache(self, cache: ReferenceCache, timesteps: torch.Tensor) -> None:
        settings = fingerprints.reference_settings(self)
        cache.check_key(fingerprints.settings_key(settings), settings)
        if self.config.reference_timestep is None and bool((timesteps != cache.timestep).any()):
            raise ValueError(f"reference cache was encoded at timestep {cache.timestep}, but the generator runs at "
                             f"{timesteps.unique().tolist()}; the reference branch must use the generator's timestep")
        if sorted(cache.layers) != sorted(self.injected_layers):
            raise ValueError("reference cache layers do not match this model's injected layers")

    def _per_sample_references(self, refs: torch.Tensor, ref_mask: torch.Tensor | None, t: torch.Tensor,
                               draws: NoiseDraws | None = None):
        mask = reference_mask(refs, ref_mask, t.shape[0], self.device)
        batch, n = refs.shape[:2]
        flat = check_image_tensor(refs.reshape(batch * n, *refs.shape[2:]), "references").to(self.device, self.dtype)
        self._check_size(flat, "references")
        valid = mask.reshape(-1)
        branch_t = t.repeat_interleave(n)[valid] if self.config.reference_timestep is None else None
        kv, latent_hw = self.reference_keys_values(flat[valid], branch_t, draws)
        out = {}
        for name, (k, v) in kv.items():
            # Padding slots hold zeros; the mask keeps queries from attending to them (the official
            # profile attends to them: zero keys take logit 0).
            full_k = k.new_zeros(batch * n, *k.shape[1:])
            full_v = v.new_zeros(batch * n, *v.shape[1:])
            full_k[valid], full_v[valid] = k, v
            out[name] = (full_k.view(batch, n, *k.shape[1:]), full_v.view(batch, n, *v.shape[1:]))
        return out, (None if self.config.missing_references == "zeros" else mask), latent_hw

    # ------------------------------------------------------------------ one step
    def forward(self, lq: torch.Tensor, references: ReferenceCache | torch.Tensor | None = None,
                ref_mask: torch.Tensor | None = None, timesteps: torch.Tensor | int | None = None,
                noise: torch.Tensor | None = None, capture: Sequence[str] = (),
                attention_mode: str | None = None, adain: bool | None = None,
                generator: torch.Generator | None = None, noises: dict[str, torch.Tensor] | None = None,
                strength: float | torch.Tensor = 1.0) -> GeneratorOutput:
        """One generator step.

        lq: [B, 3, H, W] in [-1, 1]. references: a ReferenceCache or tensor [N, 3, H, W] shared by the
        batch, a per-sample tensor [B, N, 3, H, W] (with ``ref_mask`` [B, N], True = real), or None
        (blind). timesteps: [B] (default ``config.timestep``); noise: latent noise added at those
        timesteps (training), None for the inference path. capture: injected layer names whose
        attention probabilities are returned. generator / noises: the random draws of a sampling
        profile (``official``), named as in :data:`~instantrestore.generator.noise.NOISE_NAMES`; drawn from
        ``generator`` (None = torch's global RNG) in the authors' order unless given by name.
        strength: reference strength s in [0, 1], one float or a tensor [B] (see
        :class:`~instantrestore.generator.attention.SharedAttentionCall`): 1 = the paper's model, 0 = blind.
        """
        lq = check_image_tensor(lq, "lq").to(self.device, self.dtype)
        self._check_size(lq, "lq")
        batch = lq.shape[0]
        strength = check_strength(strength, batch)
        if isinstance(strength, float) and strength == 0:
            references = None  # exactly the blind restoration, without running the reference branch
        t = self._timesteps(timesteps, batch)
        unknown = set(capture) - set(self.injected_layers)
        if unknown:
            raise ValueError(f"capture: {sorted(unknown)} are not injected layers; choose from {self.injected_layers}")

        shared = SharedAttentionCall(mode=attention_mode or self.config.attention_mode,
                                     adain=self.config.adain if adain is None else adain, adain_eps=self.config.adain_eps,
                                     adain_std=self.config.adain_std, capture=frozenset(capture),
                                     query_chunk_size=self.config.query_chunk_size,
                                     strength=strength if isinstance(strength, float) else strength.to(self.device),
                                     locality=self.config.attention_locality)
        draws = NoiseDraws(generator, dict(noises or {})) if self.samples_noise and noise is None else None
        latents = self.encode_latents(lq, draws, "input_posterior")  # first: the authors' order of draws
        if isinstance(references, torch.Tensor) and references.ndim == 4:
            if references.shape[0] == 0:
                references = None
            elif bool((t == self.config.timestep).all()) or self.config.reference_timestep is not None:
                references = self.encode_references(references, draws=draws)
            else:  # one set for the whole batch, but at each sample's own timestep
                references = references[None].expand(batch, *references.shape)
        if isinstance(references, ReferenceCache):
            self._check_cache(references, t)
            references = references.to(self.device, self.dtype)
            shared.references, shared.ref_latent_hw = references.as_batch(), tuple(references.latent_hw)
        elif isinstance(references, torch.Tensor):
            shared.references, shared.ref_mask, shared.ref_latent_hw = self._per_sample_references(
                references, ref_mask, t, draws)
        elif references is not None:
            raise TypeError(f"references: expected a ReferenceCache, a tensor or None, got {type(references).__name__}")

        shared.latent_hw = (latents.shape[-2], latents.shape[-1])
        alpha = self._alpha(t)
        if noise is not None:  # training
            latents = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
        else:  # inference: zero noise, or (official profile) noise at t drawn as the authors' code does
            latents = self._noised(latents, t, draws if self.config.inference_noise else None, "input_noise")
        eps = self._unet(latents, t, shared)
        x0 = (latents - (1 - alpha).sqrt() * eps) / alpha.sqrt()
        image = self.vae.decode(x0 / self.config.vae["scaling_factor"]).sample.clamp(-1, 1)
        return GeneratorOutput(image=image, attention=shared.captured)
