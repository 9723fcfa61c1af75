"""Model configuration: frozen dataclasses read once at the top and passed down as values.

Every backbone shares one code path; the architectures themselves are in :mod:`.backbones`
(``sd-turbo``: SD-Turbo's exact architecture; ``tiny``: the same diffusers classes at a size that
trains on a 2-core CPU).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from .backbones import BACKBONES, SD_TURBO_UNET, SD_TURBO_VAE, TINY_UNET, TINY_VAE  # noqa: F401 (re-exported)

AttentionMode = Literal["refs_only", "concat"]
LatentSampling = Literal["mode", "sample"]
AdainStd = Literal["biased", "unbiased"]
MissingReferences = Literal["mask", "zeros"]
PROFILES = ("instantrestore", "official")

# SD-Turbo's noise schedule (its scheduler config); only alphas_cumprod is used.
SD_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}

# img2img-turbo's LoRA target set: every attention projection, feed-forward and convolution.
UNET_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                     "conv", "conv1", "conv2", "conv_shortcut", "conv_in", "conv_out")
VAE_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_shortcut", "conv_out")

DEFAULT_PROMPT = "A high-quality photo of a person; professional, 8k"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a generator; stored as JSON beside its weights.

    ``timestep`` is the inference (and reference-branch) timestep; training draws from
    ``train_timesteps`` and adds noise there (paper appendix A), inference adds none.
    """

    backbone: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    schedule: dict[str, Any] = field(default_factory=lambda: dict(SD_SCHEDULE))
    image_size: int = 512
    timestep: int = 499
    train_timesteps: tuple[int, ...] = (249, 499, 749)
    unet_lora_rank: int = 32
    vae_lora_rank: int = 32
    unet_lora_targets: tuple[str, ...] = UNET_LORA_TARGETS
    vae_lora_targets: tuple[str, ...] = VAE_LORA_TARGETS
    attention_mode: AttentionMode = "refs_only"
    adain: bool = True
    adain_eps: float = 1e-5
    prompt: str = DEFAULT_PROMPT
    prompt_tokens: int = 77
    base_model: str | None = None  # hub id or local diffusers directory of the base weights
    base_vae: str | None = None  # optional separate VAE (hub id or directory)
    reference_batch_size: int = 4  # references per UNet pass; bounds memory for many references
    query_chunk_size: int | None = None  # split queries in shared attention to bound memory
    # ---- inference profile: "instantrestore" (this project's, deterministic) or "official" (the
    # authors' released code, see official_config and docs/model.md "Profiles")
    profile: str = "instantrestore"
    unet_lora_alpha: int | None = None  # None = rank (LoRA scale 1); the official code uses rank // 2
    vae_lora_alpha: int | None = None
    unet_full_modules: tuple[str, ...] = ()  # trained in full (peft modules_to_save) instead of LoRA
    vae_full_modules: tuple[str, ...] = ("encoder.conv_in",)
    latent_sampling: LatentSampling = "mode"  # VAE posterior: its mean, or a sample (official)
    inference_noise: bool = False  # add noise at ``timestep`` at inference too (official)
    reference_timestep: int | None = None  # None = the generator's timestep; the official branch runs at 1
    reference_noise: bool = False  # noise the reference latents at their timestep (official)
    freeu: dict[str, float] | None = None  # FreeU factors s1, s2, b1, b2 on the UNet (both branches)
    adain_std: AdainStd = "biased"  # "biased": sqrt(var + eps); "unbiased": torch.std + eps (official)
    missing_references: MissingReferences = "mask"  # padded reference slots: masked out, or zero K/V (official)
    # tiny-world option (None in the paper's model): sigma (image-side fraction) of a Gaussian
    # position prior on the shared attention's logits (attention.position_prior)
    attention_locality: float | None = None

    def __post_init__(self) -> None:
        if self.attention_mode not in ("refs_only", "concat"):
            raise ValueError(f"attention_mode must be 'refs_only' or 'concat', got {self.attention_mode!r}")
        choices = {"profile": (self.profile, PROFILES), "latent_sampling": (self.latent_sampling, ("mode", "sample")),
                   "adain_std": (self.adain_std, ("biased", "unbiased")),
                   "missing_references": (self.missing_references, ("mask", "zeros"))}
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.attention_locality is not None and not self.attention_locality > 0:
            raise ValueError(f"attention_locality must be > 0 or None, got {self.attention_locality}")
        n = self.schedule["num_train_timesteps"]
        extra = () if self.reference_timestep is None else (self.reference_timestep,)
        for t in (self.timestep, *self.train_timesteps, *extra):
            if not 0 <= t < n:
                raise ValueError(f"timestep {t} outside [0, {n})")
        object.__setattr__(self, "train_timesteps", tuple(self.train_timesteps))
        object.__setattr__(self, "unet_lora_targets", tuple(self.unet_lora_targets))
        object.__setattr__(self, "vae_lora_targets", tuple(self.vae_lora_targets))
        object.__setattr__(self, "unet_full_modules", tuple(self.unet_full_modules))
        object.__setattr__(self, "vae_full_modules", tuple(self.vae_full_modules))

    @property
    def branch_timestep(self) -> int:
        """The reference branch's timestep."""
        return self.timestep if self.reference_timestep is None else self.reference_timestep

    @property
    def vae_scale(self) -> int:
        """Pixels per latent cell."""
        return 2 ** (len(self.vae["block_out_channels"]) - 1)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """The config as sorted, indented JSON (what config.json stores)."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """The config of a JSON dict; refuses keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


def backbone_config(name: str, **overrides: Any) -> ModelConfig:
    """The named backbone's configuration (a name of :data:`~.backbones.BACKBONES`, e.g. ``"sd-turbo"``
    or ``"tiny"``), with overrides."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(repr(n) for n in BACKBONES)}")
    spec = BACKBONES[name]
    base = ModelConfig(backbone=name, unet=dict(spec.unet), vae=dict(spec.vae), base_model=spec.hub_id,
                       **spec.config_fields)
    return base.replace(**overrides) if overrides else base


# ---------------------------------------------------------------- the authors' released model
# What snap-research/InstantRestore's code builds and runs (its Pix2Pix_Turbo and Predictor):
# SD-Turbo's UNet with the sd-vae-ft-mse VAE, LoRA rank 32 at alpha r // 2 on the UNet (its
# conv_in trained in full) and on the whole VAE (conv_in included), FreeU in both branches,
# sampled posteriors, the input noised to t=249 and the references to t=1.
OFFICIAL_BASE_VAE = "stabilityai/sd-vae-ft-mse"
OFFICIAL_FREEU = {"s1": 0.9, "s2": 0.2, "b1": 1.4, "b2": 1.6}
OFFICIAL_UNET_LORA_TARGETS = tuple(t for t in UNET_LORA_TARGETS if t != "conv_in")
OFFICIAL_VAE_LORA_TARGETS = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out",
                             "to_k", "to_q", "to_v", "to_out.0")


def official_config(unet_lora_rank: int = 32, vae_lora_rank: int = 32, adain: bool = True,
                    attention_mode: AttentionMode = "refs_only", **overrides: Any) -> ModelConfig:
    """The ``official`` profile: the released model's architecture and inference, exactly."""
    fields: dict[str, Any] = dict(
        profile="official", vae={**SD_TURBO_VAE, "sample_size": 256}, base_vae=OFFICIAL_BASE_VAE,
        timestep=249, reference_timestep=1, latent_sampling="sample", inference_noise=True, reference_noise=True,
        freeu=dict(OFFICIAL_FREEU), adain=adain, adain_std="unbiased", attention_mode=attention_mode,
        missing_references="zeros", unet_lora_rank=unet_lora_rank, unet_lora_alpha=unet_lora_rank // 2,
        vae_lora_rank=vae_lora_rank, vae_lora_alpha=vae_lora_rank // 2,
        unet_lora_targets=OFFICIAL_UNET_LORA_TARGETS, unet_full_modules=("conv_in",),
        vae_lora_targets=OFFICIAL_VAE_LORA_TARGETS, vae_full_modules=())
    return backbone_config("sd-turbo", **{**fields, **overrides})
