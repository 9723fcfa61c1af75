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

from .files import IMAGE_SUFFIXES, atomic_path, list_images

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs rather than exhausting memory


class ImageError(ValueError):
    """An input that is not a usable image; the message says which file and why."""


def load_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image file as RGB with EXIF orientation applied.

    Raises ImageError for a missing file, a folder, a non-image file, or one above ``max_pixels``.
    Every mode Pillow opens becomes 8-bit RGB (see ``to_rgb8``): 16-bit and float grey are
    rescaled by their bit depth, alpha and transparent colours are composited on white.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
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
    return to_rgb8(im)


# Integer modes whose values do not fit 8 bits; Pillow's convert("RGB") clips them at 255, which
# turns a 16-bit grey photo pure white, so they are rescaled by their bit depth here.
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _high_bit_to_uint8(im: Image.Image) -> np.ndarray:
    """One-channel I;16* / I / F image -> uint8 (H, W) by its bit depth, not by clipping.

    I;16*: value / 65535. I (32-bit int): 8-bit if every value <= 255, else 16-bit if <= 65535,
    else 32-bit. F: [0, 1] if every value is within it, else 8-bit, else 16-bit, else min..max.
    """
    a = np.asarray(im).astype(np.float64)
    if a.size == 0:
        return np.zeros(a.shape, np.uint8)
    hi = float(a.max())
    if im.mode.startswith("I;16"):
        full = 65535.0
    elif im.mode == "F" and float(a.min()) >= 0.0 and hi <= 1.0:
        full = 1.0
    elif hi <= 255:
        full = 255.0
    elif hi <= 65535:
        full = 65535.0
    elif im.mode == "I":
        full = 2.0 ** 31 - 1
    else:  # float data beyond 16 bits: stretch its own range
        lo = float(a.min())
        a, full = a - lo, max(hi - lo, 1e-12)
    return np.clip(np.rint(a / full * 255.0), 0, 255).astype(np.uint8)


def to_rgb8(im: Image.Image) -> Image.Image:
    """Any image Pillow opens -> 8-bit RGB: high-bit-depth grey (I;16, I;16B, I, F) rescaled by
    its depth, transparency (RGBA, LA, PA, P or grey with a transparent colour) composited on white."""
    if im.mode in _HIGH_BIT_MODES:
        grey = _high_bit_to_uint8(im)
        transparent = im.info.get("transparency")
        rgb = np.repeat(grey[..., None], 3, axis=2)
        if isinstance(transparent, (int, float)):
            rgb[np.asarray(im) == transparent] = 255
        return Image.fromarray(rgb, "RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or ("transparency" in im.info and im.mode in ("P", "L", "RGB", "1")):
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
    return uint8_to_tensor(np.asarray(to_rgb8(image) if image.mode != "RGB" else image))


def tensor_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Tensor [B, 3, H, W] (or [3, H, W]) in [-1, 1] -> uint8 array [B, H, W, 3] RGB (rounded)."""
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    array = ((tensor.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def tensor_to_pil(tensor: torch.Tensor) -> list[Image.Image]:
    """Tensor [B, 3, H, W] (or [3, H, W]) in [-1, 1] -> list of PIL RGB images."""
    return [Image.fromarray(a) for a in tensor_to_uint8(tensor)]


def _as_pil(item, name: str) -> Image.Image:
    """A PIL image, an image path, or a uint8 NumPy array (H, W, 3) / (H, W) -> RGB PIL image."""
    if isinstance(item, Image.Image):
        return to_rgb8(item) if item.mode != "RGB" else item
    if isinstance(item, (str, os.PathLike)):
        return load_image(item)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or not (item.ndim == 2 or (item.ndim == 3 and item.shape[2] in (3, 4))):
            raise ValueError(f"{name}: a NumPy image must be uint8 (H, W, 3) RGB, got {item.dtype} {item.shape}; "
                             "for float data pass a torch tensor [B, 3, H, W] in [-1, 1] "
                             "(images.uint8_to_tensor converts uint8 pixels)")
        return to_rgb8(Image.fromarray(item))
    raise TypeError(f"{name}: expected a PIL image, an image path, a uint8 NumPy array (H, W, 3) or a "
                    f"torch tensor [B, 3, H, W] in [-1, 1], got {type(item).__name__}")


def _expand_items(images) -> list:
    """Flatten folders (their images, by name) and a single image / array into a list of items."""
    if isinstance(images, (Image.Image, str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
        images = [images]
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif not isinstance(images, (list, tuple)):
        return [images]  # one unsupported object: _as_pil names its type
    items = []
    for item in images:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            found = list_images(item)
            if not found:
                raise ImageError(f"{item}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
            items.extend(found)
        else:
            items.append(item)
    return items


def face_crops_to_tensor(images, size: int, name: str = "image") -> torch.Tensor:
    """Aligned square face crops, resized to ``size`` -> float32 [B, 3, size, size] in [-1, 1].

    ``images``: one or a sequence of PIL images, image paths, folders (their images, by name) or
    uint8 NumPy arrays (H, W, 3) (a (B, H, W, 3) array is a batch). Raises ValueError for a
    non-square crop (not an aligned face), TypeError for anything else."""
    tensors = []
    for item in _expand_items(images):
        image = _as_pil(item, name)
        if image.width != image.height:
            raise ValueError(f"{name}: expected an aligned square face crop, got {image.width}x{image.height}; "
                             "run `instantrestore align` on full photos first")
        if image.size != (size, size):
            image = image.resize((size, size), Image.LANCZOS)
        tensors.append(pil_to_tensor(image))
    return torch.cat(tensors) if tensors else torch.zeros(0, 3, size, size)


PIXEL_RANGE_SLACK = 0.5  # [-1, 1] plus this much: generator outputs overshoot a little, 0..255 pixels far more


def check_image_tensor(tensor: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Validate a model-facing image tensor and return it as [B, 3, H, W].

    Raises ValueError with the offending shape for anything but 3 channels, 3 or 4 dims,
    a floating dtype, non-finite values, or values far outside [-1, 1] (0..255 pixels).
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
    if tensor.numel():
        lo, hi = float(tensor.min()), float(tensor.max())
        if lo < -1 - PIXEL_RANGE_SLACK or hi > 1 + PIXEL_RANGE_SLACK:
            hint = " (looks like 0..255 pixels: use x / 127.5 - 1)" if hi > 2 else ""
            raise ValueError(f"{name}: expected values in [-1, 1], got [{lo:.3g}, {hi:.3g}]{hint}")
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


PROVENANCE_KEY = "instantrestore"


# what a re-encoded whole photo is written with (GFPGAN's quality; 4:4:4 keeps the faces' colour detail)
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}


def save_image(image: Image.Image, path: str | os.PathLike, provenance: str | None = None, **options) -> None:
    """Save a PIL image atomically; the format follows the suffix. ``provenance`` (a short text, e.g.
    JSON of what made the image) is stored in the file: a PNG text chunk or a JPEG comment. ``options``:
    more of Pillow's save options (None values left out), e.g. ``JPEG_OPTIONS``, ``exif``, ``icc_profile``."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    extra = {key: value for key, value in options.items() if value is not None}
    if provenance is not None and fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text(PROVENANCE_KEY, provenance)
        extra["pnginfo"] = info
    elif provenance is not None and fmt == "JPEG":
        extra["comment"] = f"{PROVENANCE_KEY}:{provenance}".encode()
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **extra)


def read_provenance(path: str | os.PathLike) -> str | None:
    """The ``provenance`` text ``save_image`` stored in ``path``, or None (none, or not readable)."""
    try:
        with Image.open(path) as im:
            if PROVENANCE_KEY in im.info:
                return str(im.info[PROVENANCE_KEY])
            comment = im.info.get("comment", b"")
            comment = comment.decode(errors="replace") if isinstance(comment, bytes) else str(comment)
            return comment[len(PROVENANCE_KEY) + 1:] if comment.startswith(PROVENANCE_KEY + ":") else None
    except (OSError, ValueError):
        return None


def read_recorded_settings(path: str | os.PathLike) -> dict | None:
    """The settings dict ``save_image`` stored as JSON provenance in ``path``, or None (none, not
    JSON, or not a dict): what resumable folder jobs compare before skipping an output."""
    import json

    text = read_provenance(path)
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
