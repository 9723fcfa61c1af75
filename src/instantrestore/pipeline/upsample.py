"""Background upsamplers: the whole photo enlarged ``upscale`` times before the faces are pasted.

``make_upsampler(spec, tile)`` gives one of
- ``ClassicalUpsampler`` ('lanczos', the default, or 'bicubic'): OpenCV resampling, no download, no
  model; ``upscale`` 1 returns an exact copy (no background change at all);
- ``ModelUpsampler`` (a path): any super-resolution model file that ``spandrel`` recognises
  (Real-ESRGAN, ESRGAN, SwinIR, ...; ``pip install 'instantrestore[sr]'``), read safely
  (``.safetensors``, or ``.pth``/``.pt`` with ``torch.load(weights_only=True)``) and run in tiles of
  ``tile`` input pixels (plus an overlap that is cropped away), so memory is bounded by the tile,
  not the photo. When the model's own scale differs from ``upscale`` each tile's output is resized
  to the asked size.

Every upsampler has ``name`` (recorded in each output's provenance: a model file by its content
digest) and is called as ``upsampler(image, upscale)`` on uint8 RGB (H, W, 3) -> uint8 RGB
(round(H * upscale), round(W * upscale), 3).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

CLASSICAL = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC}
DEFAULT_TILE = 256
TILE_OVERLAP = 16


def output_size(shape: tuple[int, ...], upscale: float) -> tuple[int, int]:
    """(H, W) of an image of ``shape`` (H, W, ...) enlarged ``upscale`` times."""
    return int(round(shape[0] * upscale)), int(round(shape[1] * upscale))


@dataclass(frozen=True)
class ClassicalUpsampler:
    """OpenCV resampling ('lanczos' or 'bicubic'); upscale 1 is an exact copy."""

    method: str = "lanczos"

    @property
    def name(self) -> str:
        return self.method

    def __call__(self, image: np.ndarray, upscale: float) -> np.ndarray:
        if upscale == 1:
            return image.copy()
        h, w = output_size(image.shape, upscale)
        return cv2.resize(image, (w, h), interpolation=CLASSICAL[self.method])


@dataclass
class ModelUpsampler:
    """A super-resolution network run tile by tile. ``net`` maps float [0, 1] (1, 3, h, w) to
    (1, 3, h * scale, w * scale); ``name`` identifies the weights (provenance)."""

    net: Callable[[Any], Any]
    scale: int
    name: str
    tile: int = DEFAULT_TILE
    overlap: int = TILE_OVERLAP
    device: str = "cpu"
    multiple: int = field(default=1)  # the network's input sides must be multiples of this

    def __call__(self, image: np.ndarray, upscale: float) -> np.ndarray:
        if upscale == 1:
            return image.copy()
        return tiled_upscale(image, self.net, self.scale, upscale, self.tile, self.overlap, self.device,
                             self.multiple)


def tiled_upscale(image: np.ndarray, net: Callable, scale: int, upscale: float, tile: int = DEFAULT_TILE,
                  overlap: int = TILE_OVERLAP, device: str = "cpu", multiple: int = 1) -> np.ndarray:
    """``image`` (uint8 RGB (H, W, 3)) enlarged ``upscale`` times by ``net`` (a ``scale`` x network),
    tile by tile: each ``tile`` x ``tile`` block is run with ``overlap`` pixels of context on each side
    (reflect-padded at the photo's border), its centre kept and resized to the asked scale. Peak memory:
    the uint8 output plus one tile's activations."""
    import torch

    if tile < 16 or overlap < 0:
        raise ValueError(f"tile must be at least 16 pixels and overlap at least 0, got {tile} and {overlap}")
    h, w = image.shape[:2]
    out_h, out_w = output_size(image.shape, upscale)
    out = np.empty((out_h, out_w, 3), np.uint8)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            py0, px0 = max(0, y0 - overlap), max(0, x0 - overlap)
            py1, px1 = min(h, y1 + overlap), min(w, x1 + overlap)
            block = image[py0:py1, px0:px1]
            pad_y, pad_x = (-block.shape[0]) % multiple, (-block.shape[1]) % multiple
            if pad_y or pad_x:
                block = np.pad(block, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
            x = torch.from_numpy(np.ascontiguousarray(block)).to(device).permute(2, 0, 1)[None].float() / 255.0
            with torch.inference_mode():
                y = net(x)
            sr = (y[0].clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()
            sr = sr[(y0 - py0) * scale:(y1 - py0) * scale, (x0 - px0) * scale:(x1 - px0) * scale]
            oy0, oy1 = round(y0 * out_h / h), round(y1 * out_h / h)  # this tile's place in the output
            ox0, ox1 = round(x0 * out_w / w), round(x1 * out_w / w)
            if sr.shape[:2] != (oy1 - oy0, ox1 - ox0):
                sr = cv2.resize(sr, (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_AREA
                                if scale > upscale else cv2.INTER_CUBIC)
            out[oy0:oy1, ox0:ox1] = sr
    return out


def read_weights(path: Path) -> dict:
    """A state dict from ``path``, read without running code: ``.safetensors``, or a ``.pth``/``.pt``/
    ``.ckpt`` through ``torch.load(weights_only=True)`` (a ``params_ema`` / ``params`` / ``state_dict``
    wrapper, as Real-ESRGAN releases have, is unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--bg-upsampler {path}: no such file; give 'lanczos', 'bicubic' or a model file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    if path.suffix not in (".pth", ".pt", ".ckpt", ".bin"):
        raise ValueError(f"--bg-upsampler {path}: expected a .safetensors or .pth/.pt file")
    import torch
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickles holding code are refused by weights_only
        raise ValueError(f"--bg-upsampler {path}: not loadable as plain weights ({type(exc).__name__}); "
                         "convert it to .safetensors") from exc
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            return state[key]
    return state


def load_model_upsampler(path: str | Path, tile: int = DEFAULT_TILE, device: str = "cpu") -> ModelUpsampler:
    """A ``ModelUpsampler`` from a super-resolution model file, its architecture detected by spandrel."""
    from ..utils.files import file_digest
    state = read_weights(Path(path))  # a missing or unsafe file is refused first
    try:
        import spandrel
    except ImportError as exc:
        raise ImportError(f"--bg-upsampler with a model file needs spandrel ({exc}): pip install "
                          "'instantrestore[sr]'") from exc
    try:
        descriptor = spandrel.ModelLoader(device=device).load_from_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - spandrel raises its own types for unknown architectures
        raise ValueError(f"--bg-upsampler {path}: not a super-resolution model spandrel knows "
                         f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.input_channels != 3 or \
            descriptor.output_channels != 3:
        raise ValueError(f"--bg-upsampler {path}: not an RGB image-to-image model")
    descriptor.eval()
    name = f"{descriptor.architecture.id}x{descriptor.scale}:{file_digest(Path(path))[:16]}"
    return ModelUpsampler(descriptor, descriptor.scale, name, tile=tile, device=device,
                          multiple=descriptor.size_requirements.multiple_of)


def make_upsampler(spec: str = "lanczos", tile: int = DEFAULT_TILE, device: str = "cpu"):
    """'lanczos' | 'bicubic' -> ``ClassicalUpsampler``; a file path -> ``load_model_upsampler``."""
    if spec in CLASSICAL:
        return ClassicalUpsampler(spec)
    return load_model_upsampler(spec, tile, device)
