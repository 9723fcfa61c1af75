"""Image boundary: load, validate and convert between PIL, NumPy and model tensors.

Inside the model images are float tensors [B, 3, H, W], RGB, in [-1, 1]. On disk they are
any common format; EXIF orientation is applied on load so a phone photo is upright.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .files import IMAGE_SUFFIXES, atomic_path

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs rather than exhausting memory


class ImageError(ValueError):
    """An input that is not a usable image; the message says which file and why."""


def load_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image file as RGB with EXIF orientation applied.

    Raises ImageError for a missing file, a non-image file, or one above ``max_pixels``.
    Grey and RGBA inputs are converted to RGB (alpha is composited on white).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            if im.width * im.height > max_pixels:
                raise ImageError(f"{path}: {im.width}x{im.height} is larger than the {max_pixels}-pixel limit")
            im = ImageOps.exif_transpose(im)
            im.load()
    except UnidentifiedImageError as exc:
        kinds = ", ".join(IMAGE_SUFFIXES)
        raise ImageError(f"{path}: not an image file (expected one of {kinds})") from exc
    except (OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: cannot be read as an image ({exc})") from exc
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")


def uint8_to_tensor(images) -> torch.Tensor:
    """uint8 RGB pixels -> float32 tensor [B, 3, H, W] in [-1, 1] (x / 127.5 - 1), contiguous.

    images: an array (H, W, 3) or (B, H, W, 3), channels last: NumPy (-> CPU tensor), a uint8 torch
    tensor (stays on its device), or a sequence of (H, W, 3) arrays of one size. Raises ValueError
    for another dtype or shape.
    """
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        images = np.stack([np.asarray(image) for image in images])
    is_uint8 = images.dtype == (torch.uint8 if isinstance(images, torch.Tensor) else np.uint8)
    if not is_uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 (H, W, 3) or (B, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    batch = images[None] if images.ndim == 3 else images
    if isinstance(batch, torch.Tensor):
        return (batch.float() / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
    # NumPy, not torch ops: cheaper per call inside data-loader workers
    return torch.from_numpy(np.ascontiguousarray((batch.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)))


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB image -> float32 tensor [1, 3, H, W] in [-1, 1]."""
    return uint8_to_tensor(np.asarray(image.convert("RGB") if image.mode != "RGB" else image))


def tensor_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Tensor [B, 3, H, W] (or [3, H, W]) in [-1, 1] -> uint8 array [B, H, W, 3] RGB (rounded)."""
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    array = ((tensor.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def tensor_to_pil(tensor: torch.Tensor) -> list[Image.Image]:
    """Tensor [B, 3, H, W] (or [3, H, W]) in [-1, 1] -> list of PIL RGB images."""
    return [Image.fromarray(a) for a in tensor_to_uint8(tensor)]


def face_crops_to_tensor(images, size: int, name: str = "image") -> torch.Tensor:
    """Aligned square face crops (PIL images or paths), resized to ``size`` -> float32 [B, 3, size, size]
    in [-1, 1]. Raises ValueError for a non-square crop (not an aligned face)."""
    if isinstance(images, (Image.Image, str, os.PathLike)):
        images = [images]
    tensors = []
    for item in images:
        image = item if isinstance(item, Image.Image) else load_image(item)
        if image.width != image.height:
            raise ValueError(f"{name}: expected an aligned square face crop, got {image.width}x{image.height}; "
                             "run `instantrestore align` on full photos first")
        if image.size != (size, size):
            image = image.resize((size, size), Image.LANCZOS)
        tensors.append(pil_to_tensor(image))
    return torch.cat(tensors) if tensors else torch.zeros(0, 3, size, size)


def check_image_tensor(tensor: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Validate a model-facing image tensor and return it as [B, 3, H, W].

    Raises ValueError with the offending shape for anything but 3 channels, 3 or 4 dims,
    a floating dtype, or non-finite values.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or PIL image, got {type(tensor).__name__}")
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise ValueError(f"{name}: expected shape [B, 3, H, W], got {tuple(tensor.shape)}")
    if tensor.shape[1] != 3:
        raise ValueError(f"{name}: expected 3 (RGB) channels, got {tensor.shape[1]} in shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor in [-1, 1], got dtype {tensor.dtype}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return tensor


SHRINK_MODES = ("area", "antialias")


def crop_and_resize(images: torch.Tensor, crop: tuple[float, float, float, float] | None, size: int,
                    shrink: str) -> torch.Tensor:
    """Crop by fractions of the side, then resize to size x size (differentiable).

    images: [B, C, H, W] float; crop: (x0, y0, x1, y1) fractions of the width / height with
    0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (None = the whole image); -> [B, C, size, size].
    Enlarging is bilinear (align_corners=False). Shrinking (either side above ``size``) is
    ``shrink``: "area" (box averaging, what the evaluation embedders and so the benchmark's
    identity numbers use) or "antialias" (bilinear with antialiasing, what the identity loss and
    so the shipped generator were trained with). Images already size x size pass through.
    """
    if shrink not in SHRINK_MODES:
        raise ValueError(f"shrink must be one of {', '.join(SHRINK_MODES)}, got {shrink!r}")
    _, _, h, w = images.shape
    if crop is not None:
        x0, y0, x1, y1 = crop
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"crop fractions must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {crop}")
        images = images[:, :, round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)]
    if images.shape[-2:] == (size, size):
        return images
    if max(images.shape[-2:]) > size and shrink == "area":
        return F.interpolate(images, size=(size, size), mode="area")
    antialias = max(images.shape[-2:]) > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)


def save_image(image: Image.Image, path: str | os.PathLike) -> None:
    """Save a PIL image atomically; the format follows the suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
