"""The generator's trainable part (paper sec. 3.2, appendix A): LoRA on the UNet and the VAE
encoder through peft, plus a full trainable copy of the VAE encoder's first convolution (as
img2img-turbo), and the switch that turns them all off for the frozen reference branch."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Sequence

from peft import LoraConfig
from torch import nn

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from .config import ModelConfig

ADAPTER = "default"  # peft adapter name of the generator's LoRA and trainable conv copy


def is_adapter_param(name: str) -> bool:
    """True for peft adapter tensors (LoRA weights and the trainable conv copy)."""
    return "lora_" in name or "modules_to_save" in name


def lora_target_names(module: nn.Module, suffixes: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    """Full names of the Linear/Conv2d modules whose name ends with one of ``suffixes``."""
    return [name for name, sub in module.named_modules()
            if isinstance(sub, (nn.Linear, nn.Conv2d)) and name not in exclude
            and any(name == s or name.endswith("." + s) for s in suffixes)]


_draw_initial_values = [True]  # False inside without_initial_values()


@contextlib.contextmanager
def without_initial_values() -> Iterator[None]:
    """Adapters attached inside this block draw no initial values (peft's init off): for a build
    whose every adapter tensor is then set from a checkpoint (:mod:`.empty_init`), where drawing
    them on the meta device alone took 0.7 s of the load at SD-Turbo size."""
    _draw_initial_values[0] = False
    try:
        yield
    finally:
        _draw_initial_values[0] = True


def add_generator_adapters(unet: UNet2DConditionModel, vae: AutoencoderKL, config: ModelConfig) -> None:
    """Attach the generator's adapters in place: Gaussian-initialised LoRA (scale alpha / r; alpha
    defaults to r) and full trainable copies of ``*_full_modules`` (peft's modules_to_save)."""
    init = "gaussian" if _draw_initial_values[0] else False
    for module, targets, full, rank, alpha in (
            (unet, config.unet_lora_targets, config.unet_full_modules, config.unet_lora_rank, config.unet_lora_alpha),
            (vae, config.vae_lora_targets, config.vae_full_modules, config.vae_lora_rank, config.vae_lora_alpha)):
        # A module trained in full (e.g. the VAE encoder's first conv, as in img2img-turbo) gets no LoRA.
        names = lora_target_names(module, targets, exclude=full)
        module.add_adapter(LoraConfig(r=rank, lora_alpha=rank if alpha is None else alpha, init_lora_weights=init,
                                      target_modules=names, modules_to_save=list(full) or None), ADAPTER)


@contextlib.contextmanager
def adapters_disabled(*modules: nn.Module) -> Iterator[None]:
    """Run the base weights: switch every peft adapter layer (LoRA and the trainable conv copy) off.

    A LoRA layer whose update is merged into its weight (``W + s B A``, see
    :mod:`.inference`) is not switched off (peft would unmerge it, rounding the weight each time)
    but run unmerged with its scale negated: ``(W + s B A) x - s B A x``, the base output up to
    activation rounding, with the weights untouched. peft's switch also flips requires_grad on
    adapter weights; the flags are restored after.
    """
    flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    layers = [sub for m in modules for sub in m.modules() if hasattr(sub, "enable_adapters") and sub is not m]
    merged = [layer for layer in layers if getattr(layer, "merged_adapters", None) and hasattr(layer, "scaling")]
    merged_names = [list(layer.merged_adapters) for layer in merged]
    # Inside an outer block a negated layer is already running the base weights: leave it be.
    switched = [layer for layer in layers if layer not in merged and not getattr(layer, "_base_by_negation", False)]
    # Restore each layer's own state, so that nesting (the reference branch inside a base-weights
    # forward, e.g. the prior with references) leaves the adapters off until the outer block ends.
    was_off = [bool(getattr(layer, "disable_adapters", False)) for layer in switched]
    for layer, names in zip(merged, merged_names):
        layer.merged_adapters = []
        for name in names:
            layer.scaling[name] = -layer.scaling[name]
        layer._base_by_negation = True
    for layer in switched:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer, off in zip(switched, was_off):
            layer.enable_adapters(not off)
        for layer, names in zip(merged, merged_names):
            for name in names:
                layer.scaling[name] = -layer.scaling[name]
            layer.merged_adapters = names
            layer._base_by_negation = False
        for p, flag in flags:
            p.requires_grad_(flag)
