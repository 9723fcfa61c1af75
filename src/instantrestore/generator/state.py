"""The generator's tensors under stable names: the trained adapters and the base UNet/VAE weights.

These names are what checkpoints store and what the weight fingerprints hash, so both agree on
what "the same tensor" is whichever way a model was built (peft wraps layers, diffusers does not).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .adapters import ADAPTER, is_adapter_param

if TYPE_CHECKING:
    from .one_step import OneStepGenerator

PROMPT = "prompt_embeds"


def base_param_name(name: str) -> str:
    """diffusers' own name of a parameter that peft may have wrapped."""
    return name.replace(".base_layer.", ".").replace(".original_module.", ".")


def copy_into(targets: dict[str, torch.Tensor], state: dict[str, torch.Tensor], what: str) -> None:
    """Copy ``state`` into the model's tensors, refusing missing, unexpected or misshapen entries."""
    missing, unexpected = sorted(set(targets) - set(state)), sorted(set(state) - set(targets))
    if missing or unexpected:
        raise ValueError(f"{what} checkpoint does not fit this model: {len(missing)} missing (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    with torch.no_grad():
        for name, tensor in state.items():
            if targets[name].shape != tensor.shape:
                raise ValueError(f"{name}: checkpoint shape {tuple(tensor.shape)} != model {tuple(targets[name].shape)}")
            targets[name].copy_(tensor)


def adapter_state_dict(model: OneStepGenerator) -> dict[str, torch.Tensor]:
    """The trained tensors: LoRA weights, the VAE encoder's first conv, and the prompt embedding."""
    state = {f"{prefix}.{n}": p for prefix, module in (("unet", model.unet), ("vae", model.vae))
             for n, p in module.named_parameters() if is_adapter_param(n)}
    state[PROMPT] = model.prompt_embeds
    return state


def base_weights(model: OneStepGenerator, keep_vars: bool = False) -> dict[str, torch.Tensor]:
    """The base UNet/VAE tensors (what the reference branch runs) under diffusers' own names,
    prefixed ``unet.``/``vae.``; the prompt embedding is not among them."""
    return {f"{prefix}.{base_param_name(n)}": t for prefix, module in (("unet", model.unet), ("vae", model.vae))
            for n, t in module.state_dict(keep_vars=keep_vars).items() if not is_adapter_param(n)}


def base_state_dict(model: OneStepGenerator, keep_vars: bool = False) -> dict[str, torch.Tensor]:
    """Base UNet/VAE weights under diffusers' own names (prefixed ``unet.``/``vae.``) and the prompt
    embedding: what ``base.safetensors`` holds."""
    state = base_weights(model, keep_vars)
    state[PROMPT] = model.prompt_embeds
    return state


def load_adapter_state(model: OneStepGenerator, state: dict[str, torch.Tensor]) -> None:
    """Copy trained tensors (as :func:`adapter_state_dict` names them) into ``model``."""
    copy_into(adapter_state_dict(model), state, "adapter")


def load_base_state(model: OneStepGenerator, state: dict[str, torch.Tensor]) -> None:
    """Copy base weights (as :func:`base_state_dict` names them) into ``model``; the trainable conv
    copy starts from the base conv, as peft initialises it."""
    copy_into(base_state_dict(model, keep_vars=True), state, "base")
    with torch.no_grad():
        for prefix, module in (("unet", model.unet), ("vae", model.vae)):
            for name, param in module.named_parameters():
                if "modules_to_save" in name:
                    param.copy_(state[f"{prefix}." + name.replace(f".modules_to_save.{ADAPTER}.", ".")])


def base_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The base UNet/VAE weights as parameters (what the tiny recipe's stages 0-1 train)."""
    return [t for t in base_state_dict(model, keep_vars=True).values() if isinstance(t, nn.Parameter)]
