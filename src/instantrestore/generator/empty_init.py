"""Loading a saved generator without first random-initialising it.

Building SD-Turbo's UNet and VAE draws ~950 M random numbers (about 30 s on two CPU cores) that
a checkpoint then overwrites. Here the modules are built on PyTorch's meta device (accelerate's
``init_empty_weights``: shapes only, no memory, no draws) and every tensor of the checkpoint is
*assigned* in place of its meta placeholder, so the weights are read once and never copied.
The result equals a random build followed by ``copy_`` of the same files, bit for bit.
"""
from __future__ import annotations

from typing import Mapping, MutableMapping, TypeVar

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn

from .adapters import without_initial_values
from .config import ModelConfig

Model = TypeVar("Model", bound=nn.Module)


def build_empty(cls: type[Model], config: ModelConfig) -> Model:
    """The generator ``cls(config, ...)`` with every parameter on the meta device (buffers real)."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False), without_initial_values():
        unet = UNet2DConditionModel(**config.unet)
        vae = AutoencoderKL(**config.vae)
        prompt = torch.zeros(1, config.prompt_tokens, config.unet["cross_attention_dim"])
        return cls(config, unet, vae, prompt)


def assign_tensors(model: nn.Module, targets: Mapping[str, torch.Tensor], state: MutableMapping[str, torch.Tensor],
                   what: str) -> None:
    """Put ``state[name]`` in place of the tensor ``targets[name]`` (a parameter or buffer of
    ``model``, as ``state_dict(keep_vars=True)`` hands them), cast to its dtype, keeping its
    ``requires_grad``. Refuses missing, unexpected or misshapen entries, as ``copy_into`` does.
    Entries are taken out of ``state`` as they are placed, so the file's copy of each is freed."""
    missing, unexpected = sorted(set(targets) - set(state)), sorted(set(state) - set(targets))
    if missing or unexpected:
        raise ValueError(f"{what} checkpoint does not fit this model: {len(missing)} missing (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    owners: dict[int, list[tuple[nn.Module, str, bool]]] = {}
    for module in model.modules():
        for key, tensor in module._parameters.items():
            if tensor is not None:
                owners.setdefault(id(tensor), []).append((module, key, True))
        for key, tensor in module._buffers.items():
            if tensor is not None:
                owners.setdefault(id(tensor), []).append((module, key, False))
    for name in list(state):
        tensor, target = state.pop(name), targets[name]
        if target.shape != tensor.shape:
            raise ValueError(f"{name}: checkpoint shape {tuple(tensor.shape)} != model {tuple(target.shape)}")
        value = tensor.to(target.dtype, copy=True)  # own, aligned memory: kernels then take the same paths as after copy_
        if isinstance(target, nn.Parameter):
            value = nn.Parameter(value, requires_grad=target.requires_grad)
        for module, key, is_param in owners[id(target)]:  # a tied tensor is replaced everywhere
            (module._parameters if is_param else module._buffers)[key] = value


def check_materialised(model: nn.Module) -> None:
    """RuntimeError naming a tensor still on the meta device (a checkpoint that left one out)."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:
            raise RuntimeError(f"{name}: not set by the checkpoint (still an empty placeholder)")
