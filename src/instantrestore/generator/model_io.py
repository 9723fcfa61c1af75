"""Generator weights in and out: build a generator (random, over a diffusers base, or from a
saved checkpoint), read and write its trained tensors.

Kept apart from :mod:`.model`, which holds only the method. The builders take the generator
class as their first argument, so this module never imports the model (no import cycle);
``InstantRestore.from_pretrained`` and friends are one-line calls into here.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn

from .adapters import ADAPTER, is_adapter_param
from .config import ModelConfig, backbone_config
from ..utils.tensor_io import ADAPTERS_NAME, BASE_NAME, load_tensors, read_config, save_tensors, write_config

if TYPE_CHECKING:
    from .model import InstantRestore

FORMAT_METADATA = {"format": "instantrestore/1"}


class SyntheticModelWarning(UserWarning):
    """A loaded model was not trained on real faces (the tiny synthetic-world backbone). The CLI
    prints its own line instead (cli/common.py ``warn_model``) and ignores this category."""


SYNTHETIC_MODEL_MESSAGE = ("this checkpoint has the tiny synthetic-world backbone: it was trained only on synthetic "
                           "faces, and on real photos its output is NOT a restoration. Real photos need SD-Turbo "
                           "weights trained on real faces (README, 'What works where').")


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


# ------------------------------------------------------------------ state dicts
def adapter_state_dict(model: InstantRestore) -> dict[str, torch.Tensor]:
    """The trained tensors: LoRA weights, the VAE encoder's first conv, and the prompt embedding."""
    state = {f"{prefix}.{n}": p for prefix, module in (("unet", model.unet), ("vae", model.vae))
             for n, p in module.named_parameters() if is_adapter_param(n)}
    state["prompt_embeds"] = model.prompt_embeds
    return state


def base_state_dict(model: InstantRestore, keep_vars: bool = False) -> dict[str, torch.Tensor]:
    """Base UNet/VAE weights under diffusers' own names (prefixed ``unet.``/``vae.``)."""
    state = {f"{prefix}.{base_param_name(n)}": t for prefix, module in (("unet", model.unet), ("vae", model.vae))
             for n, t in module.state_dict(keep_vars=keep_vars).items() if not is_adapter_param(n)}
    state["prompt_embeds"] = model.prompt_embeds
    return state


def load_adapter_state(model: InstantRestore, state: dict[str, torch.Tensor]) -> None:
    copy_into(adapter_state_dict(model), state, "adapter")


def load_base_state(model: InstantRestore, state: dict[str, torch.Tensor]) -> None:
    copy_into(base_state_dict(model, keep_vars=True), state, "base")
    # The trainable conv copy starts from the base conv, as peft initialises it.
    with torch.no_grad():
        for prefix, module in (("unet", model.unet), ("vae", model.vae)):
            for name, param in module.named_parameters():
                if "modules_to_save" in name:
                    param.copy_(state[f"{prefix}." + name.replace(f".modules_to_save.{ADAPTER}.", ".")])


# ------------------------------------------------------------------ builders
def encode_prompt(base_model: str, prompt: str, trust_pickle: bool = False) -> torch.Tensor:
    """Embed the fixed prompt once with the base model's CLIP text encoder: [1, 77, D]."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(base_model, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(base_model, subfolder="text_encoder", use_safetensors=not trust_pickle)
    tokens = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    with torch.no_grad():
        return encoder(tokens.input_ids)[0].float()


def build_random(cls: type[InstantRestore], config: str | ModelConfig = "tiny", seed: int = 0,
                 **overrides) -> InstantRestore:
    """Random weights of a named backbone or a ModelConfig; the caller's global RNG is untouched."""
    cfg = backbone_config(config, **overrides) if isinstance(config, str) else config.replace(**overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**cfg.unet)
        vae = AutoencoderKL(**cfg.vae)
        prompt = torch.randn(1, cfg.prompt_tokens, cfg.unet["cross_attention_dim"]) * 0.5
        return cls(cfg, unet, vae, prompt)


def _plain_config(config) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def build_from_base(cls: type[InstantRestore], base_model: str, vae: str | None = None, prompt: str | None = None,
                    trust_pickle: bool = False, prompt_embeds: torch.Tensor | None = None,
                    **overrides) -> InstantRestore:
    """Fresh adapters over pretrained base weights (a hub id or a local diffusers directory). The
    prompt is embedded by the base's text encoder unless ``prompt_embeds`` [1, 77, D] is given."""
    safetensors_only = not trust_pickle
    unet = UNet2DConditionModel.from_pretrained(base_model, subfolder="unet", use_safetensors=safetensors_only)
    if vae is None:
        vae_model = AutoencoderKL.from_pretrained(base_model, subfolder="vae", use_safetensors=safetensors_only)
    else:
        sub = "vae" if (Path(vae) / "vae").is_dir() else None
        vae_model = AutoencoderKL.from_pretrained(vae, subfolder=sub, use_safetensors=safetensors_only)
    reference = backbone_config("sd-turbo")
    unet_cfg, vae_cfg = _plain_config(unet.config), _plain_config(vae_model.config)
    same_arch = all(unet_cfg.get(k) == v or (isinstance(v, list) and list(unet_cfg.get(k) or []) == v)
                    for k, v in reference.unet.items() if k != "sample_size")
    cfg = reference.replace(backbone="sd-turbo" if same_arch else "custom", unet=unet_cfg, vae=vae_cfg,
                            base_model=str(base_model), base_vae=None if vae is None else str(vae))
    if prompt is not None:
        cfg = cfg.replace(prompt=prompt)
    cfg = cfg.replace(**overrides)
    if prompt_embeds is None:
        prompt_embeds = encode_prompt(base_model, cfg.prompt, trust_pickle=trust_pickle)
    return cls(cfg, unet, vae_model, prompt_embeds)


def build_with_base_of(cls: type[InstantRestore], path: str | os.PathLike, seed: int = 0, trust_pickle: bool = False,
                       base_model: str | None = None, **overrides) -> InstantRestore:
    """A generator with the base weights of a saved checkpoint and fresh adapters (from ``seed``).

    ``path``: an instantrestore checkpoint directory (base weights bundled in base.safetensors, or
    fetched from its config's ``base_model``), or a diffusers base (directory or hub id).
    """
    path = Path(path)
    saved = read_config(path) if path.is_dir() else None
    if saved is None:
        if path.is_dir() and not (path / "unet").is_dir():
            raise FileNotFoundError(f"{path}: neither an instantrestore checkpoint (config.json + safetensors) nor a "
                                    "diffusers base folder (unet/, vae/)")
        if path.is_file():
            raise ValueError(f"{path}: expected a checkpoint directory (config.json + *.safetensors)")
        return build_from_base(cls, str(path), trust_pickle=trust_pickle, **overrides)
    cfg = ModelConfig.from_dict(saved).replace(**overrides)
    if base_model is not None:
        cfg = cfg.replace(base_model=base_model)
    if (path / BASE_NAME).is_file():
        model = build_random(cls, cfg, seed=seed)
        load_base_state(model, load_tensors(path / BASE_NAME))
        return model
    if cfg.base_model is None:
        raise FileNotFoundError(f"{path}: no {BASE_NAME} and no base_model in its config")
    base = build_from_base(cls, cfg.base_model, vae=cfg.base_vae, trust_pickle=trust_pickle)
    return cls(cfg, base.unet, base.vae, base.prompt_embeds)


def load_pretrained(cls: type[InstantRestore], path: str | os.PathLike, trust_pickle: bool = False,
                    base_model: str | None = None, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> InstantRestore:
    """A checkpoint written by :func:`save_pretrained` (base + trained adapters), in eval mode; a
    diffusers base directory / hub id gives fresh adapters on it."""
    path = Path(path)
    model = build_with_base_of(cls, path, trust_pickle=trust_pickle, base_model=base_model)
    if path.is_dir() and read_config(path) is not None:
        load_adapter_state(model, load_tensors(path / ADAPTERS_NAME, trust_pickle=trust_pickle))
    if model.config.backbone == "tiny":
        # one fixed message: Python's default filter shows it once per process, not once per load
        warnings.warn(SYNTHETIC_MODEL_MESSAGE, SyntheticModelWarning, stacklevel=3)
    return model.to(device=device, dtype=dtype).eval()


def save_pretrained(model: InstantRestore, directory: str | os.PathLike, include_base: bool | None = None,
                    dtype: torch.dtype | None = None) -> None:
    """Write config.json + adapters.safetensors (+ base.safetensors when the base weights cannot be
    fetched from ``config.base_model``, e.g. the tiny backbone). ``dtype``: store floating tensors in
    this precision (e.g. bfloat16 for weights that came from a bf16 checkpoint: exact, half the size)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if include_base is None:
        include_base = model.config.base_model is None

    def cast(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if dtype is None:
            return state
        # The prompt embedding is computed here in fp32, not read from the checkpoint: kept as is.
        return {k: v.to(dtype) if v.is_floating_point() and k != "prompt_embeds" else v for k, v in state.items()}

    save_tensors(cast(adapter_state_dict(model)), directory / ADAPTERS_NAME, metadata=FORMAT_METADATA)
    if include_base:
        save_tensors(cast(base_state_dict(model)), directory / BASE_NAME, metadata=FORMAT_METADATA)
    write_config(directory, model.config.to_json())


def base_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The base UNet/VAE weights as parameters (what the tiny recipe's stages 0-1 train)."""
    return [t for t in base_state_dict(model, keep_vars=True).values() if isinstance(t, nn.Parameter)]
