"""The backbone registry: every architecture the generator runs on, described in one place.

A backbone is a pair of diffusers configs (UNet2DConditionModel, AutoencoderKL) plus what the
rest of the package needs to know about it: the ModelConfig fields it implies, how many decoder
self-attention layers the shared attention must find, which text encoder(s) embed the fixed
prompt, any extra UNet inputs, and the hub id of its pretrained weights. ``config.backbone_config``,
the model's layer check, ``model_io``'s prompt embedding and the command-line choices all read
:data:`BACKBONES`; adding an architecture is one :class:`Backbone` entry here.

This module imports no torch or diffusers, so front-ends can list the choices cheaply.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# SD-Turbo = SD 2.1-base architecture. diffusers calls the per-block head count
# "attention_head_dim" for this model family (5/10/20/20 heads of 64 channels).
SD_TURBO_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
SD_TURBO_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

TINY_UNET: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    # Attention in the two high-resolution levels, as SD has it; decoder attention at 16x16 and 32x32.
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "attention_head_dim": [2, 4, 4],
    "cross_attention_dim": 32,
    "use_linear_projection": True,
    "norm_num_groups": 8,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
TINY_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 128,
    "scaling_factor": 1.0,
}


@dataclass(frozen=True)
class TextEncoder:
    """One text encoder of a diffusers base: its tokenizer and encoder sub-folders and the
    transformers classes that read them. The prompt embedding is the encoders' last hidden
    states, concatenated along the feature axis when there are several (SDXL has two)."""

    encoder: str = "text_encoder"
    tokenizer: str = "tokenizer"
    encoder_class: str = "CLIPTextModel"
    tokenizer_class: str = "CLIPTokenizer"


@dataclass(frozen=True)
class Backbone:
    """One architecture the generator runs on.

    unet / vae: the diffusers configs (``UNet2DConditionModel(**unet)``, ``AutoencoderKL(**vae)``).
    config_fields: ModelConfig fields this backbone sets over the defaults (image size, ranks, ...).
    injected_layers: how many decoder self-attention layers the shared attention must replace
    (None: any number, for architectures that tests resize freely).
    text_encoders: what embeds the fixed prompt of a pretrained base (empty: the prompt embedding
    is a random tensor, as for the tiny world).
    unet_inputs: extra keyword arguments of every UNet call, built from the model and the batch size
    (SDXL's ``added_cond_kwargs``); None for the SD 2.x family.
    hub_id: where the pretrained weights are (None: no pretrained weights exist).
    """

    name: str
    description: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    config_fields: dict[str, Any] = field(default_factory=dict)
    injected_layers: int | None = None
    text_encoders: tuple[TextEncoder, ...] = ()
    unet_inputs: Callable[[Any, int], dict[str, Any]] | None = None
    hub_id: str | None = None


BACKBONES: dict[str, Backbone] = {
    backbone.name: backbone for backbone in (
        Backbone("tiny", "SD's diffusers classes at a size that trains on a 2-core CPU (128 px, the synthetic world)",
                 TINY_UNET, TINY_VAE, config_fields=dict(image_size=128, unet_lora_rank=8, vae_lora_rank=4,
                                                         prompt_tokens=4)),
        Backbone("sd-turbo", "SD-Turbo (the SD 2.1-base UNet and VAE), 512 px: the paper's backbone",
                 SD_TURBO_UNET, SD_TURBO_VAE, config_fields=dict(image_size=512), injected_layers=9,
                 text_encoders=(TextEncoder(),), hub_id="stabilityai/sd-turbo"),
    )
}
# What a diffusers base of an unregistered architecture is treated as ("custom" in its config):
# the SD 2.x family's prompt encoder and config fields, any number of injected layers.
DEFAULT_BASE = "sd-turbo"
CUSTOM = "custom"


def backbone_names() -> list[str]:
    """The registered backbones' names (the command-line choices)."""
    return list(BACKBONES)


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name``; ``"custom"`` (a diffusers base of another architecture)
    is described by :data:`DEFAULT_BASE`'s encoders and fields, with no layer-count check.
    Raises ValueError naming the choices for anything else."""
    if name in BACKBONES:
        return BACKBONES[name]
    if name == CUSTOM:
        base = BACKBONES[DEFAULT_BASE]
        return Backbone(CUSTOM, "a diffusers base of another architecture", base.unet, base.vae, base.config_fields,
                        None, base.text_encoders, base.unet_inputs, None)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(repr(n) for n in BACKBONES)}")


def _same(value: Any, expected: Any) -> bool:
    return value == expected or (isinstance(expected, list) and list(value or []) == expected)


def match_pretrained(unet_config: dict[str, Any]) -> str | None:
    """The registered pretrained backbone whose UNet architecture ``unet_config`` has (its sample
    size aside), or None."""
    for backbone in BACKBONES.values():
        if backbone.hub_id is not None and all(_same(unet_config.get(k), v) for k, v in backbone.unet.items()
                                               if k != "sample_size"):
            return backbone.name
    return None
