"""Loading a saved generator without first random-initialising it.

Building SD-Turbo's UNet and VAE draws ~950 M random numbers (about 30 s on two CPU cores) that
a checkpoint then overwrites. Here the modules are built on PyTorch's meta device (accelerate's
``init_empty_weights``: shapes only, no memory, no draws) and every tensor of the checkpoint is
*assigned* in place of its meta placeholder. The result equals a random build followed by
``copy_`` of the same files, bit for bit.

Zero copy: the assigned tensors are safetensors' views of the file, memory-mapped copy-on-write
(``MAP_PRIVATE``): a load costs no copy (a copy out of the map was 1.7-2 s of a 2.6 s SD-Turbo
load), pages are read on first use, and writing a weight (a LoRA merge, training) copies only the
pages written, never the file. The map is one region: while any view of it lives, every page
read stays resident. So a step that replaces *some* weights (channels-last, a cast kept partial)
must call :func:`release_file_maps`, which moves what is still mapped into the model's own memory
and lets the map go; a step that replaces them all (a full cast, a move to a GPU) frees it anyway.
A checkpoint must not be rewritten in place while a model mapping it lives (ours are written to a
temporary file and renamed, which leaves the mapped file intact).
"""
from __future__ import annotations

import weakref
from typing import Mapping, MutableMapping, TypeVar

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn

from .adapters import without_initial_values
from .config import ModelConfig

Model = TypeVar("Model", bound=nn.Module)
FILE_MAPS = "_file_maps"  # model attribute: the views assigned from mapped files and the regions they span


def build_empty(cls: type[Model], config: ModelConfig) -> Model:
    """The generator ``cls(config, ...)`` with every parameter on the meta device (buffers real)."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False), without_initial_values():
        unet = UNet2DConditionModel(**config.unet)
        vae = AutoencoderKL(**config.vae)
        prompt = torch.zeros(1, config.prompt_tokens, config.unet["cross_attention_dim"])
        return cls(config, unet, vae, prompt)


def _owners(model: nn.Module) -> dict[int, list[tuple[nn.Module, str, bool]]]:
    """id(tensor) -> every (module, key, is_parameter) slot holding it (tied tensors have several)."""
    owners: dict[int, list[tuple[nn.Module, str, bool]]] = {}
    for module in model.modules():
        for table, is_param in ((module._parameters, True), (module._buffers, False)):
            for key, tensor in table.items():
                if tensor is not None:
                    owners.setdefault(id(tensor), []).append((module, key, is_param))
    return owners


def _put(slots: list[tuple[nn.Module, str, bool]], value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Put ``value`` in every slot of ``like`` (a tied tensor is replaced everywhere), as a
    Parameter with its ``requires_grad`` if ``like`` is one; returns what was put."""
    if isinstance(like, nn.Parameter):
        value = nn.Parameter(value, requires_grad=like.requires_grad)
    for module, key, is_param in slots:
        (module._parameters if is_param else module._buffers)[key] = value
    return value


def assign_tensors(model: nn.Module, targets: Mapping[str, torch.Tensor], state: MutableMapping[str, torch.Tensor],
                   what: str) -> None:
    """Put ``state[name]`` in place of the tensor ``targets[name]`` (a parameter or buffer of
    ``model``, as ``state_dict(keep_vars=True)`` hands them), cast to its dtype, keeping its
    ``requires_grad``. Refuses missing, unexpected or misshapen entries, as ``copy_into`` does.
    A tensor of the target's dtype is put in as it is: a file view stays mapped (module doc); the
    region the views cover is recorded on the model for :func:`release_file_maps`."""
    missing, unexpected = sorted(set(targets) - set(state)), sorted(set(state) - set(targets))
    if missing or unexpected:
        raise ValueError(f"{what} checkpoint does not fit this model: {len(missing)} missing (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    owners = _owners(model)
    views: dict[int, weakref.ref] = {}  # by id: a set of tensors would compare them elementwise
    first, end = None, None
    for name in list(state):
        tensor, target = state.pop(name), targets[name]
        if target.shape != tensor.shape:
            raise ValueError(f"{name}: checkpoint shape {tuple(tensor.shape)} != model {tuple(target.shape)}")
        value = tensor.to(target.dtype)  # the file's view itself when the dtype fits
        placed = _put(owners[id(target)], value, target)
        if value is tensor and tensor.device.type == "cpu" and tensor.untyped_storage().nbytes():
            views[id(placed)] = weakref.ref(placed)
            start = tensor.untyped_storage().data_ptr()
            first = start if first is None else min(first, start)
            end = max(end or 0, start + tensor.untyped_storage().nbytes())
    if first is not None:
        maps = getattr(model, FILE_MAPS, {"views": {}, "ranges": []})
        maps["views"].update(views)
        maps["ranges"].append((first, end))
        setattr(model, FILE_MAPS, maps)


def file_mapped(model: nn.Module) -> list[torch.Tensor]:
    """The model's parameters and buffers that are still views of a mapped checkpoint file."""
    maps = getattr(model, FILE_MAPS, None)
    if not maps:
        return []
    # an assigned view whose data still lies in the region (a cast or channels-last put new data
    # in the same parameter object, or a new object in its place)
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
    return [t for t in tensors if (ref := maps["views"].get(id(t))) is not None and ref() is t
            and t.device.type == "cpu" and t.untyped_storage().nbytes()
            and any(lo <= t.untyped_storage().data_ptr() < hi for lo, hi in maps["ranges"])]


def release_file_maps(model: nn.Module) -> int:
    """Copy every tensor still viewing a mapped checkpoint into the model's own memory, so the map
    (and every page of it read so far) is let go once nothing else holds it; returns how many were
    copied. Values, dtypes, memory formats and ``requires_grad`` are kept."""
    mapped = file_mapped(model)
    if mapped:
        owners = _owners(model)
        with torch.no_grad():
            for tensor in mapped:
                _put(owners[id(tensor)], tensor.detach().clone(), tensor)
    if hasattr(model, FILE_MAPS):
        delattr(model, FILE_MAPS)
    return len(mapped)


def check_materialised(model: nn.Module) -> None:
    """RuntimeError naming a tensor still on the meta device (a checkpoint that left one out)."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:
            raise RuntimeError(f"{name}: not set by the checkpoint (still an empty placeholder)")
