"""What a run is made of, built from a :class:`TrainConfig`: generator, loss networks, datasets
and the fixed validation batch (the trainable set is the stage's: :mod:`.stages`)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from ..generator import model_io
from ..generator.model import InstantRestore
from .config import TrainConfig
from .data_checks import check_folder_dataset
from .sampling import collate
from .stages import STAGES

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ generator
def model_overrides(config: TrainConfig) -> dict:
    """ModelConfig fields the training config sets (None = keep the model's own)."""
    pairs = {"unet_lora_rank": config.unet_lora_rank, "vae_lora_rank": config.vae_lora_rank,
             "train_timesteps": config.train_timesteps, "adain": config.adain,
             "attention_locality": config.attention_locality}
    out = {k: v for k, v in pairs.items() if v is not None}
    out["image_size"] = config.image_size
    return out


def build_model(config: TrainConfig) -> InstantRestore:
    """The generator to train. ``init_from`` gives base weights (adapters always start fresh from
    ``model_seed``); ``base_model`` a diffusers base; otherwise random ``backbone`` weights.
    ``unet_zero_out``: the UNet's last conv is zeroed afterwards (see :func:`zero_unet_output`)."""
    model = _load_or_build(config)
    if config.unet_zero_out:
        zero_unet_output(model)
    return model


def zero_unet_output(model: InstantRestore) -> None:
    """Zero the UNet's output conv: the noise prediction is 0, so the one-step output is the VAE
    round trip of the input. A random tiny UNet otherwise starts by destroying its input latent,
    and a few hundred CPU steps go to undoing that before any restoring is learned."""
    with torch.no_grad():
        model.unet.conv_out.weight.zero_()
        if model.unet.conv_out.bias is not None:
            model.unet.conv_out.bias.zero_()


def _load_or_build(config: TrainConfig) -> InstantRestore:
    overrides = model_overrides(config)
    if config.init_from is not None:
        return model_io.build_with_base_of(InstantRestore, config.init_from, seed=config.model_seed,
                                           trust_pickle=config.trust_pickle, **overrides)
    if config.base_model is not None:
        return InstantRestore.from_base(config.base_model, trust_pickle=config.trust_pickle, **overrides)
    if STAGES[config.stage].needs_trained_base:
        log.warning("no init_from / base_model: stage 2 starts from a RANDOM %s base (fine for tests; a real "
                    "run needs a prior, e.g. init_from=<stage-1 out>/final or base_model=stabilityai/sd-turbo)",
                    config.backbone)
    return InstantRestore.from_config(config.backbone, seed=config.model_seed, **overrides)


# ------------------------------------------------------------------ loss networks
def build_identity_network(config: TrainConfig) -> nn.Module | None:
    """R of the identity loss, frozen; None when the identity weight is 0."""
    if config.loss.identity == 0:
        return None
    if config.identity_network is None:
        raise ValueError("loss.identity > 0 needs identity_network: an `instantrestore train-id` output dir "
                         "(synthetic world) or ArcFace weights (real faces); or set loss.identity=0")
    path = Path(config.identity_network)
    if path.is_dir():
        from ..idnet import load_identity_network

        net = load_identity_network(path, trust_pickle=config.trust_pickle)
    elif path.is_file():
        from ..idnet import load_arcface

        net = load_arcface(path, arch=config.identity_arch, trust_pickle=config.trust_pickle)
    else:
        raise FileNotFoundError(f"identity_network {path}: no such directory or file")
    return net.eval().requires_grad_(False)


def build_discriminator(config: TrainConfig) -> nn.Module | None:
    """D of the adversarial loss (trained with its own optimiser); None when its weight is 0."""
    if config.loss.adversarial == 0:
        return None
    from ..losses.adversarial import Discriminator

    if config.discriminator == "tiny":
        return Discriminator.tiny(seed=config.discriminator_seed)
    return Discriminator.from_pretrained(config.discriminator, trust_pickle=config.trust_pickle,
                                         seed=config.discriminator_seed)


# ------------------------------------------------------------------ data
def build_dataset(config: TrainConfig) -> tuple[Dataset, list[int], list[int]]:
    """(dataset, training indices, validation indices). Validation items come from identities
    never trained on: the synthetic world gets ``val_identities`` extra identities, a folder
    holds out its last ``val_identities`` identities (sorted by name)."""
    from ..data.datasets import IdentityFolderDataset, SyntheticIdentityDataset

    common = dict(size=config.image_size, refs_max=config.refs_max, refs_min=config.refs_min, preset=config.preset)
    if config.is_synthetic:
        m = config.images_per_identity
        ds = SyntheticIdentityDataset(seed=config.world_seed, num_identities=config.identities + config.val_identities,
                                      images_per_identity=m, style=config.world_style,
                                      oracle_reference=config.oracle_reference, **common)
        train = list(range(config.identities * m))
        held = range(config.identities, config.identities + config.val_identities)
        val = [i * m + j for j in range(m) for i in held]  # photo j of every held-out identity, then j+1
        return ds, train, val[: config.val_batch]
    root = Path(config.data)
    if not root.is_dir():
        raise FileNotFoundError(f"data {root}: not a directory (give an identity-folder root or 'synthetic')")
    ds = IdentityFolderDataset(root, seed=config.world_seed, landmarks=config.landmarks, **common)
    counts = [len(rec.images) for rec in ds.identities]
    n_train = check_folder_dataset(config, ds)  # refuses what cannot train, logs what looks wrong
    starts = [sum(counts[:i]) for i in range(len(counts) + 1)]
    train = list(range(starts[n_train]))
    val = [starts[i] + j for j in range(max(counts, default=0)) for i in range(n_train, len(counts)) if j < counts[i]]
    marked = sum(ds.has_landmarks(p) for rec in ds.identities[:n_train] for p in rec.images)
    log.info("data %s: %d people for training (%d images, %d with landmarks), %d held out: %s", root, n_train,
             len(train), marked, config.val_identities, ", ".join(r.name for r in ds.identities[n_train:]) or "-")
    return ds, train, val[: config.val_batch]


def held_out_people(config: TrainConfig, dataset: Dataset) -> list[str]:
    """The people of the validation split (never trained on), by name."""
    if config.is_synthetic:
        from ..data.datasets import synthetic_identity_name

        return [synthetic_identity_name(config.world_seed, i)
                for i in range(config.identities, config.identities + config.val_identities)]
    held = dataset.identities[len(dataset.identities) - config.val_identities:] if config.val_identities else []
    return [rec.name for rec in held]


def validation_batch(dataset: Dataset, indices: list[int]) -> dict | None:
    """The fixed validation batch (epoch 0 draw), or None when nothing is held out."""
    if not indices:
        return None
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    return collate([dataset[i] for i in indices])
