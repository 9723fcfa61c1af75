"""Official checkpoint -> generator in the ``official`` profile, and -> a checkpoint folder.

The authors' model keeps two copies of the base weights: the generator's UNet/VAE (wrapped by
peft) and the frozen reference UNet/VAE. They are equal except the UNet's ``conv_in``, which
the generator trains in full. Here the reference copy is the base and the trained conv_in a
peft ``modules_to_save`` copy, so switching adapters off gives the reference branch exactly.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch

from ..generator import model_io
from ..generator.config import OFFICIAL_BASE_VAE, ModelConfig, official_config
from ..utils.tensor_io import read_config
from .checkpoint import ADAPTER_FILE, OfficialCheckpoint, OfficialCheckpointError, read_official
from .prompt import prompt_embedding

if TYPE_CHECKING:
    from ..generator.one_step import OneStepGenerator

Model = TypeVar("Model", bound="OneStepGenerator")
log = logging.getLogger(__name__)
OFFICIAL_BASE_UNET = "stabilityai/sd-turbo"
VAE_ADAPTER = "vae_skip"  # the adapter name their VAE LoRA was saved under


def _rank(state: dict[str, torch.Tensor], prefix: str) -> int:
    for key, tensor in state.items():
        if key.startswith(prefix) and ".lora_A." in key:
            return int(tensor.shape[0])
    raise OfficialCheckpointError(f"no LoRA weights under {prefix!r}: not an InstantRestore generator checkpoint")


def _flag(checkpoint: OfficialCheckpoint, key: str, from_name: dict[str, bool], default: bool) -> bool:
    value = checkpoint.model_cfg(key)
    if isinstance(value, bool):
        return value
    name = checkpoint.path.name
    for word, guess in from_name.items():
        if word in name:
            log.info("%s: no %s in its config; %s from the file name", name, key, guess)
            return guess
    return default


def checkpoint_config(checkpoint: OfficialCheckpoint, adain: bool | None = None, **overrides) -> ModelConfig:
    """The generator config the checkpoint was trained with: ranks from the tensors, AdaIN and
    attention mode from its config (file names of the released ablations as a fallback)."""
    if adain is None:
        adain = _flag(checkpoint, "use_adain", {"final": True, "adain": True, "lmattn": False, "base": False}, True)
    concat = _flag(checkpoint, "train_input", {}, False)
    if "unet" in overrides:  # another architecture than SD-Turbo's (tests)
        overrides.setdefault("backbone", "custom")
    return official_config(unet_lora_rank=_rank(checkpoint.state, "unet."), vae_lora_rank=_rank(checkpoint.state, "vae."),
                           adain=adain, attention_mode="concat" if concat else "refs_only", **overrides)


def adapter_key(key: str) -> str | None:
    """This package's name for one of their generator's trained tensors: a LoRA weight (their VAE
    adapter renamed) or the UNet's fully trained conv_in (peft's trainable copy); None otherwise."""
    if key.split(".", 1)[0] in ("unet", "vae") and ".lora_" in key:
        return key.replace(f".{VAE_ADAPTER}.", ".default.")
    if key.startswith("unet.conv_in."):
        return f"unet.conv_in.modules_to_save.default.{key.removeprefix('unet.conv_in.')}"
    return None


def split_training_state(state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """(base, adapters, text encoder) tensors under this package's names, from a training checkpoint.

    Refuses a checkpoint whose generator and reference base weights differ anywhere but conv_in.
    """
    base, adapters, text, generator_base = {}, {}, {}, {}
    for key, tensor in state.items():
        head, _, rest = key.partition(".")
        if head in ("original_unet", "original_vae"):
            base[f"{head.removeprefix('original_')}.{rest}"] = tensor
        elif head == "text_encoder":
            text[rest] = tensor
        elif (name := adapter_key(key)) is not None:
            adapters[name] = tensor
        elif head in ("unet", "vae"):
            generator_base[key.replace(".base_layer.", ".")] = tensor
        else:
            raise OfficialCheckpointError(f"unexpected tensor {key!r} in the checkpoint")
    differ = [k for k, t in generator_base.items() if k not in base or not torch.equal(t, base[k])]
    if differ:
        raise OfficialCheckpointError(
            f"the generator's base weights differ from the reference networks' in {len(differ)} tensors "
            f"(e.g. {differ[:3]}): a run that trained its reference networks, which this package does not support")
    return base, adapters, text


def _fill(model: OneStepGenerator, base: dict[str, torch.Tensor] | None, adapters: dict[str, torch.Tensor],
          prompt: torch.Tensor) -> None:
    if base is not None:
        base["prompt_embeds"] = prompt
        model_io.load_base_state(model, base)
    adapters["prompt_embeds"] = prompt
    model_io.load_adapter_state(model, adapters)


def load_official(cls: type[Model], source: str | os.PathLike | OfficialCheckpoint, base_model: str | None = None,
                  base_vae: str | None = None, text_encoder: str | None = None,
                  prompt_embeds: torch.Tensor | None = None, adain: bool | None = None,
                  device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                  **config_overrides) -> Model:
    """A generator in the ``official`` profile from one of the authors' files (a path, or the file
    already opened by ``read_official``).

    base_model / base_vae: where an adapter file's base weights come from (default the authors':
    ``stabilityai/sd-turbo`` and ``stabilityai/sd-vae-ft-mse``; hub ids or local directories); a
    training checkpoint carries its own. text_encoder: a diffusers base (hub id or directory) whose
    tokenizer and text encoder embed the fixed prompt, as the authors' code does; by default the
    adapter file uses ``base_model``'s and a training checkpoint its own text encoder (bf16-rounded
    weights, so the embedding is close to, not bit-equal with, theirs). prompt_embeds overrides all.
    config_overrides: ModelConfig fields over the official ones (e.g. a smaller ``unet``/``vae``
    architecture in tests, or ``reference_batch_size``).
    """
    checkpoint = source if isinstance(source, OfficialCheckpoint) else read_official(source)
    config = checkpoint_config(checkpoint, adain, **config_overrides)
    if checkpoint.kind == ADAPTER_FILE:
        for part, expected in (("unet", config.unet_lora_targets), ("vae", config.vae_lora_targets)):
            stored = checkpoint.lora_targets.get(part)
            if stored is not None and sorted(stored) != sorted(expected):
                raise OfficialCheckpointError(f"{checkpoint.path}: {part} LoRA targets {stored} differ from the official {list(expected)}")
        base_model, base_vae = base_model or OFFICIAL_BASE_UNET, base_vae or OFFICIAL_BASE_VAE
        # The prompt is embedded by base_model's own tokenizer and text encoder, as theirs was.
        if prompt_embeds is None and text_encoder is not None:
            prompt_embeds = prompt_embedding(text_encoder, config.prompt)
        model = model_io.build_from_base(cls, base_model, vae=base_vae, prompt_embeds=prompt_embeds, **_fields(config))
        prompt_embeds = model.prompt_embeds
        unexpected = [k for k in checkpoint.state if adapter_key(k) is None]
        if unexpected:
            raise OfficialCheckpointError(f"{checkpoint.path}: unexpected tensors {unexpected[:3]} in a save_model file")
        adapters = {adapter_key(k): v for k, v in checkpoint.state.items()}
        _fill(model, None, adapters, prompt_embeds)
    else:
        base, adapters, text = split_training_state(checkpoint.state)
        if prompt_embeds is None:
            prompt_embeds = prompt_embedding(text_encoder, config.prompt, checkpoint_text_encoder=text)
        model = model_io.build_random(cls, config.replace(base_model=base_model or OFFICIAL_BASE_UNET), seed=0)
        _fill(model, base, adapters, prompt_embeds)
    return model.to(device=device, dtype=dtype).eval()


def _fields(config: ModelConfig) -> dict:
    """The official profile's fields that ``build_from_base`` must set over its defaults."""
    keep = ("unet", "vae", "backbone", "base_model", "base_vae")
    return {k: v for k, v in config.__dict__.items() if k not in keep}


def convert_official(path: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False, **load_kwargs) -> Path:
    """Write an official file as an instantrestore checkpoint folder: config.json +
    adapters.safetensors + base.safetensors (base weights bundled, in the file's own precision, so
    restoring needs no hub access). Returns the folder."""
    # The method class is enough to convert: the public InstantRestore imports this package.
    from ..generator.one_step import OneStepGenerator

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        if read_config(out) is None:
            raise FileExistsError(f"{out}: exists and is not empty; choose another --out or pass --overwrite")
        raise FileExistsError(f"{out}: already holds a checkpoint; pass --overwrite to replace it")
    checkpoint = read_official(path)  # opened once: memory-mapped, its dtype is the storage precision
    model = load_official(OneStepGenerator, checkpoint, **load_kwargs)
    model_io.save_pretrained(model, out, include_base=True, dtype=checkpoint.dtype)
    return out
