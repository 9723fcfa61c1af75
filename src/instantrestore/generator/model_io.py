"""Generator weights in and out: build a generator (random, over a diffusers base, or from a
saved checkpoint), read and write its trained tensors.

Kept apart from the method (:mod:`.one_step`). The builders take the generator class as their
first argument, so this module never imports the model; ``InstantRestore.from_pretrained`` and
friends are one-line calls into here. Checkpoint files record the digests of the tensors they
hold (:mod:`.fingerprints`), so a loaded model's fingerprint costs no hashing.
"""
from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from . import fingerprints
from .empty_init import assign_tensors, build_empty, check_materialised
from .backbones import CUSTOM, DEFAULT_BASE, get_backbone, match_pretrained
from .config import ModelConfig, backbone_config
from .state import (adapter_state_dict, base_param_name, base_parameters, base_state_dict,  # noqa: F401 (re-exported)
                    copy_into, load_adapter_state, load_base_state)
from ..utils.tensor_io import (ADAPTERS_NAME, BASE_NAME, load_tensors, read_config, read_metadata, save_tensors,
                               write_config)

if TYPE_CHECKING:
    from .one_step import OneStepGenerator

Model = TypeVar("Model", bound="OneStepGenerator")
FINGERPRINTS_KEY = "fingerprints"  # safetensors metadata: the digests of the file's tensors, as JSON
FORMAT_METADATA = {"format": "instantrestore/1"}


class SyntheticModelWarning(UserWarning):
    """A loaded model was not trained on real faces (the tiny synthetic-world backbone). The CLI
    prints its own line instead (cli/common.py ``warn_model``) and ignores this category."""


SYNTHETIC_MODEL_MESSAGE = ("this checkpoint has the tiny synthetic-world backbone: it was trained only on synthetic "
                           "faces, and on real photos its output is NOT a restoration. Real photos need SD-Turbo "
                           "weights trained on real faces (README, 'What works where').")


Builder = TypeVar("Builder", bound=Callable)


def normal_tensors(builder: Builder) -> Builder:
    """Build outside ``torch.inference_mode``: tensors made inside it keep no version counter, and
    a model whose weights have none must be hashed again at every fingerprint."""
    @functools.wraps(builder)
    def build(*args, **kwargs):
        with torch.inference_mode(False):
            return builder(*args, **kwargs)
    return build  # type: ignore[return-value]


# ------------------------------------------------------------------ builders
def encode_prompt(base_model: str, prompt: str, trust_pickle: bool = False, backbone: str = DEFAULT_BASE
                  ) -> torch.Tensor:
    """Embed the fixed prompt once with the base model's text encoder(s), as the backbone registry
    names them: [1, T, D] (several encoders' hidden states are concatenated along D)."""
    import transformers

    embeddings = []
    for spec in get_backbone(backbone).text_encoders:
        tokenizer = getattr(transformers, spec.tokenizer_class).from_pretrained(base_model, subfolder=spec.tokenizer)
        encoder = getattr(transformers, spec.encoder_class).from_pretrained(
            base_model, subfolder=spec.encoder, use_safetensors=not trust_pickle)
        tokens = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt")
        with torch.no_grad():
            embeddings.append(encoder(tokens.input_ids)[0].float())
    if not embeddings:
        raise ValueError(f"the {backbone} backbone has no text encoder to embed a prompt with")
    return embeddings[0] if len(embeddings) == 1 else torch.cat(embeddings, dim=-1)


@normal_tensors
def build_random(cls: type[Model], config: str | ModelConfig = "tiny", seed: int = 0,
                 **overrides) -> Model:
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


@normal_tensors
def build_from_base(cls: type[Model], base_model: str, vae: str | None = None, prompt: str | None = None,
                    trust_pickle: bool = False, prompt_embeds: torch.Tensor | None = None,
                    **overrides) -> Model:
    """Fresh adapters over pretrained base weights (a hub id or a local diffusers directory). The
    prompt is embedded by the base's text encoder unless ``prompt_embeds`` [1, 77, D] is given."""
    safetensors_only = not trust_pickle
    unet = UNet2DConditionModel.from_pretrained(base_model, subfolder="unet", use_safetensors=safetensors_only)
    if vae is None:
        vae_model = AutoencoderKL.from_pretrained(base_model, subfolder="vae", use_safetensors=safetensors_only)
    else:
        sub = "vae" if (Path(vae) / "vae").is_dir() else None
        vae_model = AutoencoderKL.from_pretrained(vae, subfolder=sub, use_safetensors=safetensors_only)
    unet_cfg, vae_cfg = _plain_config(unet.config), _plain_config(vae_model.config)
    name = match_pretrained(unet_cfg)  # an unregistered architecture takes the default base's settings
    cfg = backbone_config(name or DEFAULT_BASE).replace(
        backbone=name or CUSTOM, unet=unet_cfg, vae=vae_cfg, base_model=str(base_model),
        base_vae=None if vae is None else str(vae))
    if prompt is not None:
        cfg = cfg.replace(prompt=prompt)
    cfg = cfg.replace(**overrides)
    if prompt_embeds is None:
        prompt_embeds = encode_prompt(base_model, cfg.prompt, trust_pickle=trust_pickle, backbone=cfg.backbone)
    return cls(cfg, unet, vae_model, prompt_embeds)


@normal_tensors
def build_with_base_of(cls: type[Model], path: str | os.PathLike, seed: int = 0, trust_pickle: bool = False,
                       base_model: str | None = None, **overrides) -> Model:
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
        fingerprints.remember(model, "base", read_metadata(path / BASE_NAME).get(FINGERPRINTS_KEY))
        return model
    if cfg.base_model is None:
        raise FileNotFoundError(f"{path}: no {BASE_NAME} and no base_model in its config")
    base = build_from_base(cls, cfg.base_model, vae=cfg.base_vae, trust_pickle=trust_pickle)
    return cls(cfg, base.unet, base.vae, base.prompt_embeds)


@normal_tensors
def load_pretrained(cls: type[Model], path: str | os.PathLike, trust_pickle: bool = False,
                    base_model: str | None = None, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> Model:
    """A checkpoint written by :func:`save_pretrained` (base + trained adapters), in eval mode; a
    diffusers base directory / hub id gives fresh adapters on it."""
    path = Path(path)
    saved = read_config(path) if path.is_dir() else None
    if saved is not None and (path / BASE_NAME).is_file() and (path / ADAPTERS_NAME).is_file():
        model = _load_without_init(cls, path, ModelConfig.from_dict(saved), base_model)
    else:
        model = build_with_base_of(cls, path, trust_pickle=trust_pickle, base_model=base_model)
        if saved is not None:
            adapters = path / ADAPTERS_NAME
            load_adapter_state(model, load_tensors(adapters, trust_pickle=trust_pickle))
            fingerprints.remember(model, "adapters", read_metadata(adapters).get(FINGERPRINTS_KEY))
    if model.config.backbone == "tiny":
        # one fixed message: Python's default filter shows it once per process, not once per load
        warnings.warn(SYNTHETIC_MODEL_MESSAGE, SyntheticModelWarning, stacklevel=4)  # past normal_tensors
    return model.to(device=device, dtype=dtype).eval()


def _load_without_init(cls: type[Model], path: Path, cfg: ModelConfig, base_model: str | None) -> Model:
    """A checkpoint folder with both safetensors files, built empty and filled by assignment
    (:mod:`.empty_init`): the weights are read once, nothing is drawn at random."""
    if base_model is not None:
        cfg = cfg.replace(base_model=base_model)
    model = build_empty(cls, cfg)
    # targets looked up per file: both hold the prompt embedding, which the first replaces
    for name, targets in ((BASE_NAME, lambda: base_state_dict(model, keep_vars=True)),
                          (ADAPTERS_NAME, lambda: adapter_state_dict(model))):
        assign_tensors(model, targets(), load_tensors(path / name), name.split(".")[0])
    check_materialised(model)
    for part, name in (("base", BASE_NAME), ("adapters", ADAPTERS_NAME)):
        fingerprints.remember(model, part, read_metadata(path / name).get(FINGERPRINTS_KEY))
    return model


def save_pretrained(model: OneStepGenerator, directory: str | os.PathLike, include_base: bool | None = None,
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

    for part, state, name in (("adapters", adapter_state_dict, ADAPTERS_NAME), ("base", base_state_dict, BASE_NAME)):
        if part == "base" and not include_base:
            continue
        stored = cast(state(model))
        record = fingerprints.digests_to_record(model, part, stored)
        save_tensors(stored, directory / name, metadata={**FORMAT_METADATA, FINGERPRINTS_KEY: json.dumps(record)})
    write_config(directory, model.config.to_json())
