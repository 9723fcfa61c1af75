"""What the generator accepts, checked and converted at its boundary: images (PIL, paths, folders,
uint8 arrays or tensors in [-1, 1]) -> tensors [B, 3, H, W], timesteps, reference strengths and
per-sample reference masks. Every refusal is a ValueError / TypeError naming the argument."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..utils.images import check_image_tensor, face_crops_to_tensor

ImageLike = Image.Image | torch.Tensor | np.ndarray | str | os.PathLike
NO_REFERENCES = ("references: the list is empty; give at least one reference image, "
                 "or pass references=None for blind restoration")


def check_strength(strength: float | torch.Tensor, batch: int | None = None) -> float | torch.Tensor:
    """A reference strength as a float, or a float tensor [B] (``batch`` given), all in [0, 1].

    Raises ValueError naming the bad value (not a number, NaN, outside [0, 1], wrong length)."""
    if isinstance(strength, torch.Tensor) and strength.numel() == 1 and strength.ndim <= 1:
        strength = float(strength)
    if isinstance(strength, torch.Tensor):
        if batch is None or strength.ndim != 1 or strength.shape[0] != batch:
            raise ValueError(f"strength: expected one value or one per image ([{batch}]), got shape "
                             f"{tuple(strength.shape)}")
        values = strength.detach().float()
        if not bool(((values >= 0) & (values <= 1)).all()):  # NaN fails both comparisons
            raise ValueError(f"strength: every value must be in [0, 1] (0 = blind, 1 = full reference "
                             f"strength), got {values.tolist()}")
        return values
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating, np.integer)):
        raise ValueError(f"strength: expected a number in [0, 1] (0 = blind, 1 = full reference strength), "
                         f"got {strength!r}; 'auto' is resolved by instantrestore.pipeline.strength.resolve_strength")
    value = float(strength)
    if not 0 <= value <= 1:
        raise ValueError(f"strength: must be in [0, 1] (0 = blind, 1 = full reference strength), got {value}")
    return value


def timestep_batch(timesteps: torch.Tensor | int, batch: int, device: torch.device) -> torch.Tensor:
    """One timestep per image: an int or a tensor of 1 or ``batch`` values -> long tensor [batch]."""
    if isinstance(timesteps, int):
        return torch.full((batch,), timesteps, dtype=torch.long, device=device)
    timesteps = timesteps.to(device, torch.long).reshape(-1)
    if timesteps.numel() == 1:
        timesteps = timesteps.expand(batch)
    if timesteps.numel() != batch:
        raise ValueError(f"timesteps: expected {batch} values (one per image), got {timesteps.numel()}")
    return timesteps


def check_size(images: torch.Tensor, multiple: int, name: str, backbone: str, image_size: int) -> None:
    """Refuse image sides that are not multiples of ``multiple`` (the backbone's downsampling)."""
    h, w = images.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"{name}: size {h}x{w} is not a multiple of {multiple} (the {backbone} "
                         f"backbone's downsampling); resize or pad to e.g. {image_size}x{image_size}")


def image_batch(images: ImageLike | Sequence[ImageLike] | torch.Tensor, image_size: int, device: torch.device,
                dtype: torch.dtype, name: str) -> torch.Tensor:
    """Aligned face crops (PIL images, paths, folders, uint8 NumPy arrays; resized to ``image_size``)
    or a tensor in [-1, 1] -> [B, 3, H, W] on ``device`` / ``dtype``. Raises TypeError / ValueError
    naming ``name`` for anything else."""
    if isinstance(images, torch.Tensor):
        return check_image_tensor(images, name).to(device, dtype)
    return face_crops_to_tensor(images, image_size, name).to(device, dtype)


def is_single_image(images: object) -> bool:
    """Whether ``images`` is one image (a PIL image, a file path, an array [H, W(, C)]) rather than
    several: :meth:`restore` then returns one image, not a list."""
    return (isinstance(images, Image.Image) or (isinstance(images, (str, os.PathLike)) and not Path(images).is_dir())
            or (isinstance(images, np.ndarray) and images.ndim in (2, 3)))


def reference_mask(refs: torch.Tensor, ref_mask: torch.Tensor | None, batch: int, device: torch.device
                   ) -> torch.Tensor:
    """The per-sample references' mask [B, N] (True = a real reference), checked against ``refs``
    [B, N, 3, H, W]: every sample needs at least one real reference."""
    if refs.ndim != 5 or refs.shape[2] != 3:
        raise ValueError(f"references: expected [B, N, 3, H, W], got {tuple(refs.shape)}")
    n = refs.shape[1]
    if refs.shape[0] != batch:
        raise ValueError(f"references: batch {refs.shape[0]} does not match lq batch {batch}")
    mask = torch.ones(batch, n, dtype=torch.bool, device=device) if ref_mask is None else ref_mask.to(device, torch.bool)
    if mask.shape != (batch, n):
        raise ValueError(f"ref_mask: expected shape {(batch, n)}, got {tuple(mask.shape)}")
    if not bool(mask.any(dim=1).all()):
        raise ValueError("ref_mask: every sample needs at least one real reference")
    return mask
