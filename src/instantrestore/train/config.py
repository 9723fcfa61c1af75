"""Training configuration: one dataclass, read from YAML presets (``configs/*.yaml``) plus overrides.

Loss weights and the landmark-attention settings are nested (``loss:``, ``landmark_attention:``)
and come from :mod:`instantrestore.losses`; every other key is flat. Overrides may use dotted
names (``loss.lpips=0``). Unknown keys are refused with a "did you mean" hint.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..data.synthetic import WORLD_STYLES
from ..generator.backbones import backbone_names
from ..losses import LandmarkAttentionConfig, LossWeights
from .schedule import LR_SCHEDULES
from .stages import STAGES

BACKBONES = tuple(backbone_names())  # the registry's names (generator/backbones.py)
MIXED_PRECISION = ("no", "fp16", "bf16")
NESTED = {"loss": LossWeights, "landmark_attention": LandmarkAttentionConfig}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; stored as ``OUT/config.yaml``.

    stage: ``autoencoder`` = stage 0 of the tiny recipe (the base VAE alone learns to reconstruct
    clean photos, then its latent scale is fitted: SD's pretrained VAE's stand-in); ``prior`` =
    stage 1 (blind one-step restorer, base UNet trained in full - and the VAE too unless
    ``freeze_vae`` - adapters off, no references); ``instantrestore`` = the paper's stage (frozen
    base, LoRA + VAE conv_in trained, shared attention over per-sample references). Each is a
    class in :mod:`.stages` (registry ``STAGES``), which also checks the config against it.
    Model source, first match wins: ``init_from`` (an instantrestore model dir, e.g. a stage-1
    ``final/``: its base weights, fresh adapters), ``base_model`` (diffusers dir or hub id, e.g.
    ``stabilityai/sd-turbo``), else random ``backbone`` weights from ``model_seed``.
    data: ``synthetic`` (identities rendered on the fly from ``world_seed``) or an identity-folder
    root for :class:`~instantrestore.data.datasets.IdentityFolderDataset`. The last
    ``val_identities`` identities (synthetic: ``val_identities`` extra ones) are held out for the
    validation grids. ``batch_size`` is per process; effective batch = batch_size x processes x
    grad_accum.
    """

    stage: str = "instantrestore"
    backbone: str = "tiny"
    init_from: str | None = None
    base_model: str | None = None
    model_seed: int = 0
    trust_pickle: bool = False
    # model options applied on top of the loaded/built model config (None = keep)
    unet_lora_rank: int | None = None
    vae_lora_rank: int | None = None
    train_timesteps: tuple[int, ...] | None = None
    adain: bool | None = None
    attention_locality: float | None = None  # tiny-world option, see ModelConfig.attention_locality
    # keep the VAE fixed: in stage prior its base weights (an autoencoder-stage output, so the UNet
    # must restore); in stage instantrestore its LoRA and conv_in copy (the latent scale stays put)
    freeze_vae: bool = False
    # data
    data: str = "synthetic"
    world_seed: int = 0
    # tiny-world recipe options (off in the paper's recipe; docs/training.md): how the synthetic
    # people's marks look, and the chance a reference is the target itself re-rendered with jitter
    world_style: str = "classic"
    oracle_reference: float = 0.0
    # stage prior only: its decoder self-attention also reads the (oracle) references' keys/values
    # ("concat"), so the stand-in prior's attention learns to copy as SD-Turbo's already can
    prior_references: bool = False
    # False: train on the inference path (no latent noise at the drawn timestep), a deterministic
    # one-step regression a small UNet learns in hundreds of steps; the paper adds noise (True)
    train_noise: bool = True
    # zero the UNet's output conv before training (stage prior from a random UNet): the untrained
    # prior then returns its input's VAE round trip and learns the restoration as a residual
    unet_zero_out: bool = False
    identities: int = 1000
    images_per_identity: int = 8
    val_identities: int = 4
    landmarks: str = "auto"
    image_size: int = 128
    preset: str = "sr8"
    refs_min: int = 1
    refs_max: int = 4
    num_workers: int = 0
    # optimisation
    steps: int = 400
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-4
    disc_lr: float | None = None  # None: same as lr
    lr_schedule: str = "constant"  # or "cosine" / "linear" decay to lr_final_ratio * lr (train/schedule.py)
    lr_warmup_steps: int = 0
    lr_final_ratio: float = 0.0
    weight_decay: float = 1e-2
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    seed: int = 0
    # losses
    loss: LossWeights = field(default_factory=LossWeights)
    landmark_attention: LandmarkAttentionConfig = field(default_factory=LandmarkAttentionConfig)
    identity_network: str | None = None  # idnet dir (safetensors + config.json) or ArcFace weights file
    identity_arch: str = "r50"  # ArcFace iresnet depth when identity_network is a file
    discriminator: str = "tiny"  # "tiny" (random small DINOv2) or a Dinov2Model dir / hub id
    discriminator_seed: int = 0
    # run folder, logging, checkpoints
    out: str = "runs/train"
    save_every: int = 100
    keep_checkpoints: int = 3
    log_every: int = 10
    sample_every: int = 100
    val_batch: int = 4

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"train config: {message}")

        need(self.stage in STAGES, f"stage must be one of {tuple(STAGES)}, got {self.stage!r}")
        need(self.backbone in BACKBONES, f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        need(self.mixed_precision in MIXED_PRECISION,
             f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        need(self.landmarks in ("auto", "none", "require"), f"landmarks must be auto|none|require, got {self.landmarks!r}")
        need(1 <= self.refs_min <= self.refs_max, f"need 1 <= refs_min <= refs_max, got {self.refs_min}, {self.refs_max}")
        for name in ("steps", "batch_size", "grad_accum", "image_size", "save_every", "log_every", "sample_every",
                     "keep_checkpoints", "val_batch", "identities"):
            need(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(self.images_per_identity >= 2, f"images_per_identity must be >= 2, got {self.images_per_identity}")
        need(self.num_workers >= 0 and self.val_identities >= 0, "num_workers and val_identities must be >= 0")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        need(0 <= self.lr_warmup_steps < self.steps, f"lr_warmup_steps must be in [0, steps), got {self.lr_warmup_steps}")
        need(0.0 <= self.lr_final_ratio <= 1.0, f"lr_final_ratio must be in [0, 1], got {self.lr_final_ratio}")
        need(self.world_style in WORLD_STYLES, f"world_style must be one of {tuple(WORLD_STYLES)}, got {self.world_style!r}")
        need(0.0 <= self.oracle_reference <= 1.0, f"oracle_reference must be in [0, 1], got {self.oracle_reference}")
        need(not (self.oracle_reference or self.world_style != "classic") or self.is_synthetic,
             "world_style and oracle_reference apply to data: synthetic only")
        need(not self.prior_references or self.stage == "prior", "prior_references applies to stage 'prior' only")
        for problem in STAGES[self.stage].config_problems(self):
            need(False, problem)
        if self.train_timesteps is not None:
            object.__setattr__(self, "train_timesteps", tuple(int(t) for t in self.train_timesteps))

    # ------------------------------------------------------------------ helpers
    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def is_synthetic(self) -> bool:
        return self.data == "synthetic"

    def replace(self, **changes: Any) -> "TrainConfig":
        return self.from_dict(merge_overrides(self.to_dict(), changes))

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-able dict (tuples as lists)."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """The YAML text; also written atomically to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            from ..utils.files import atomic_write_text

            atomic_write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Build from a nested dict (dotted keys allowed), refusing unknown keys with close matches."""
        data = merge_overrides({}, data)
        _check_keys(data, [f.name for f in dataclasses.fields(cls)], "")
        for key, kind in NESTED.items():
            value = data.get(key)
            if isinstance(value, Mapping):
                _check_keys(value, [f.name for f in dataclasses.fields(kind)], key + ".")
                data[key] = kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            elif value is not None and not isinstance(value, kind):
                raise ValueError(f"train config: {key} must be a mapping, got {type(value).__name__}")
        for key in ("train_timesteps",):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike | None, **overrides: Any) -> "TrainConfig":
        """Read a YAML preset (or start from defaults when ``path`` is None) and apply overrides.

        Overrides take flat names, dotted names (``**{"loss.lpips": 0}``) or nested dicts.
        """
        data: dict[str, Any] = {}
        if path is not None:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a YAML mapping of config keys, got {type(loaded).__name__}")
            data = loaded
        try:
            return cls.from_dict(merge_overrides(data, overrides))
        except (TypeError, ValueError) as exc:
            where = f"{path}: " if path is not None else ""
            raise ValueError(f"{where}{exc}") from exc


def merge_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with ``overrides`` applied; dotted keys and nested dicts update nested sections."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for key, value in overrides.items():
        if isinstance(value, LossWeights | LandmarkAttentionConfig):
            value = dataclasses.asdict(value)
        head, dot, rest = key.partition(".")
        if dot:
            section = out.get(head)
            if not isinstance(section, dict):
                section = {} if section is None else dict(dataclasses.asdict(section))
            out[head] = {**section, rest: value}
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["loss.lpips=0", "steps=10"]`` -> ``{"loss.lpips": 0, "steps": 10}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. loss.lpips=0")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _check_keys(data: Mapping[str, Any], known: list[str], prefix: str) -> None:
    unknown = [k for k in data if k not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{prefix}{key}" + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
        raise ValueError(f"unknown config keys: {', '.join(hints)}; known: {', '.join(prefix + k for k in known)}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
