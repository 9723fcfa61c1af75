"""Checks of an identity-folder dataset against the run, made before any model is built.

Refused (ValueError, one line saying what to do): too few people for the held-out split, and a
loss that needs landmarks (LAS, face alignment) on a dataset where no training image has a side
file. Reported in the log and run on: mixed or non-square image sizes, images smaller than the
training size, and partial landmarks (people with fewer than 2 usable images are reported by the
dataset's scan, which also runs first).
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..data.datasets import IdentityFolderDataset
    from .config import TrainConfig

log = logging.getLogger(__name__)

PREPARE_HINT = "instantrestore prepare-data"


def training_people(config: "TrainConfig", dataset: "IdentityFolderDataset") -> int:
    """How many people train (the rest are held out); ValueError when the split leaves none."""
    people, held = len(dataset.identities), config.val_identities
    if people - held < 1:
        raise ValueError(f"data {dataset.root}: {people} people with 2 or more usable images, and val_identities={held} "
                         f"holds out {held} of them for validation, leaving none to train on. Add people, or hold "
                         f"out fewer: --set val_identities={max(0, people - 1)}")
    return people - held


def landmark_terms(config: "TrainConfig") -> list[str]:
    """The loss terms of the run that read landmarks."""
    return [name for name in ("landmark_attention", "face_alignment") if getattr(config.loss, name) > 0]


def check_landmarks(config: "TrainConfig", dataset: "IdentityFolderDataset", n_train: int) -> None:
    """Refuse a landmark loss with no landmarks among the training images; warn when some lack them."""
    terms = landmark_terms(config)
    if not terms:
        return
    wanted = ", ".join(f"loss.{t}={getattr(config.loss, t)}" for t in terms)
    off = " ".join(f"--set loss.{t}=0" for t in terms)
    if config.landmarks == "none":
        raise ValueError(f"{wanted} needs landmarks, but landmarks: none reads none; use landmarks: auto, or {off}")
    images = [p for rec in dataset.identities[:n_train] for p in rec.images]
    found = sum(1 for p in images if dataset.has_landmarks(p))
    if found == 0:
        raise ValueError(f"{wanted} needs landmarks, but none of the {len(images)} training images under "
                         f"{dataset.root} has a landmark side file (<stem>.json). Write them first with "
                         f"`{PREPARE_HINT} {dataset.root}`, or train without that loss: {off}")
    if found < len(images):
        log.warning("%d of %d training images have landmarks: the landmark attention loss supervises only samples "
                    "whose target and a reference have them (metrics.jsonl: las_queries); `%s %s` writes the rest",
                    found, len(images), PREPARE_HINT, dataset.root)


def check_images(config: "TrainConfig", dataset: "IdentityFolderDataset") -> None:
    """Report image sizes that differ from one another or from the training size (people with fewer
    than 2 usable images are reported by the dataset's scan, ``folders.checked_records``)."""
    sizes = Counter(size for rec in dataset.identities for size in rec.sizes)
    if len(sizes) > 1:
        listed = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(5))
        log.warning("data %s: mixed image sizes: %s%s; every image is centre-cropped and resized to %d px. Aligned "
                    "crops of one size train best (`%s DATA --align OUT --size N` makes them)", dataset.root, listed,
                    " ..." if len(sizes) > 5 else "", config.image_size, PREPARE_HINT)
    not_square = sum(n for (w, h), n in sizes.items() if w != h)
    if not_square:
        log.warning("data %s: %d image(s) are not square, so not aligned face crops; they are centre-cropped",
                    dataset.root, not_square)
    small = sum(n for (w, h), n in sizes.items() if min(w, h) < config.image_size)
    if small:
        log.warning("data %s: %d image(s) are smaller than image_size=%d and are upscaled", dataset.root, small,
                    config.image_size)


def check_folder_dataset(config: "TrainConfig", dataset: "IdentityFolderDataset") -> int:
    """Every check above; returns the number of training people (the first by name)."""
    n_train = training_people(config, dataset)
    check_images(config, dataset)
    check_landmarks(config, dataset, n_train)
    return n_train
