"""Where one point of the degraded face looks in the references (paper fig. 4).

One forward pass captures the decoder self-attention probabilities; the query token containing
the point is read in each chosen layer, its mass on every reference token is averaged over heads
and layers, and the result is a map over each reference plus the total mass per reference.
``render_attention_map`` draws the maps as heat maps over the references.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..utils.images import face_crops_to_tensor, load_image, tensor_to_uint8
from .inputs import ImageLike
from .model import InstantRestore
from .reference_cache import ReferenceCache
from .token_grid import containing_tokens, inside_image

__all__ = ["AttentionMap", "attention_map", "render_attention_map"]


@dataclass(frozen=True)
class AttentionMap:
    """The attention of one point of the face on the references.

    per_reference: float32 [R, h, w], the mass on each reference's tokens, on the finest key grid
    among ``layers`` (coarser layers spread each token's mass evenly over the cells it covers, so
    ``per_reference[r].sum() == mass[r]``). mass: total per reference, averaged over heads and
    layers; sums to 1 in ``refs_only`` mode (in ``concat`` mode ``self_mass`` holds the rest).
    point: (x, y) in the face's pixels; image_hw: the face's (H, W) the point refers to.
    """

    per_reference: torch.Tensor
    mass: list[float]
    point: tuple[float, float]
    layers: list[str]
    image_hw: tuple[int, int]
    self_mass: float = 0.0


def _image_hw(face: ImageLike | torch.Tensor) -> tuple[int, int]:
    """(H, W) of one face as given, before the model resizes it."""
    if isinstance(face, torch.Tensor):
        return int(face.shape[-2]), int(face.shape[-1])
    if isinstance(face, np.ndarray):
        return int(face.shape[0]), int(face.shape[1])
    if isinstance(face, Image.Image):
        return face.height, face.width
    if isinstance(face, (str, os.PathLike)):
        image = load_image(face)
        return image.height, image.width
    raise TypeError(f"face: expected one aligned crop (PIL image, path, uint8 array or tensor), got "
                    f"{type(face).__name__}")


def _spread(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[R, h, w] masses -> [R, H, W] with each token's mass spread evenly over the cells it covers."""
    if tuple(grid.shape[-2:]) == size:
        return grid
    fine = F.interpolate(grid[None], size=size, mode="nearest")[0]
    totals = fine.sum(dim=(1, 2), keepdim=True)
    return torch.where(totals > 0, fine * grid.sum(dim=(1, 2), keepdim=True) / totals.clamp_min(1e-30), fine)


@torch.inference_mode()
def attention_map(model: InstantRestore, face: ImageLike | torch.Tensor,
                  references: ReferenceCache | Sequence[ImageLike] | torch.Tensor | None,
                  point: tuple[float, float], layers: Sequence[str] | None = None) -> AttentionMap:
    """The attention a point of ``face`` puts on each reference, averaged over heads and ``layers``.

    face: one aligned crop, anything :meth:`InstantRestore.restore` accepts; point: (x, y) in its
    pixels (pixel centres at integers); references: a cache or reference images; layers: injected
    layer names (default: all of ``model.injected_layers``). Raises ValueError for a point outside
    the face, no references, or more than one face.
    """
    if references is None or (not isinstance(references, torch.Tensor) and len(references) == 0) or (
            isinstance(references, torch.Tensor) and references.shape[0] == 0):
        raise ValueError("attention maps need references: the map shows where a point of the face looks in "
                         "them (give at least one reference image)")
    image_hw = _image_hw(face)
    x, y = (float(v) for v in point)
    xy = np.array([[x, y]])
    if not bool(inside_image(xy, image_hw)[0]):
        raise ValueError(f"point ({x:g}, {y:g}) lies outside the {image_hw[1]}x{image_hw[0]} face; x must be in "
                         f"[0, {image_hw[1] - 1}] and y in [0, {image_hw[0] - 1}] (pixels)")
    layers = list(model.injected_layers if layers is None else layers)
    if not layers:
        raise ValueError("layers: give at least one injected layer")
    batch = model.image_batch(face, "face")
    if batch.shape[0] != 1:
        raise ValueError(f"face: expected one face, got {batch.shape[0]}")
    if not isinstance(references, ReferenceCache):
        references = model.image_batch(references, "references")

    was_training = model.training
    model.eval()
    try:
        captured = model(batch, references=references, capture=layers).attention
    finally:
        model.train(was_training)

    grids, self_masses = [], []
    for name in layers:
        att = captured[name]
        query = int(containing_tokens(xy, image_hw, att.query_hw)[0])
        row = att.probs[0, :, query].float().mean(0)  # [R, Lk], mean over heads
        grids.append(row.reshape(row.shape[0], *att.key_hw))
        if att.self_probs is not None:
            self_masses.append(float(att.self_probs[0, :, query].float().mean(0).sum()))
    size = max((tuple(g.shape[-2:]) for g in grids), key=lambda hw: hw[0] * hw[1])
    per_reference = torch.stack([_spread(g, size) for g in grids]).mean(0).cpu()
    mass = torch.stack([g.sum(dim=(1, 2)) for g in grids]).mean(0)
    return AttentionMap(per_reference=per_reference, mass=[float(m) for m in mass], point=(x, y), layers=layers,
                        image_hw=image_hw, self_mass=float(np.mean(self_masses)) if self_masses else 0.0)


# ------------------------------------------------------------------ drawing

TILE = 256
CAPTION = 22


def _tiles(images: Sequence[ImageLike] | torch.Tensor, name: str) -> list[np.ndarray]:
    """Images -> uint8 (TILE, TILE, 3) RGB tiles."""
    if isinstance(images, ReferenceCache):
        raise ValueError(f"{name}: a reference cache holds no pixels to draw on; pass the reference images")
    if isinstance(images, torch.Tensor):
        batch = images if images.ndim == 4 else images[None]
        batch = F.interpolate(batch.float(), size=(TILE, TILE), mode="bilinear", antialias=True, align_corners=False)
    else:
        batch = face_crops_to_tensor(images, TILE, name)
    return list(tensor_to_uint8(batch))


def _heat(image: np.ndarray, density: np.ndarray, peak: float) -> np.ndarray:
    """Overlay ``density`` (h, w), scaled by ``peak``, as a jet-coloured heat map on a uint8 RGB tile."""
    level = np.clip(density / max(peak, 1e-12), 0, 1)
    level = cv2.resize(level.astype(np.float32), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.round(level * 255)), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = 0.25 + 0.5 * level[..., None]  # faint where nothing is attended, so the face stays readable
    return np.uint8(np.round(image * (1 - alpha) + colour * alpha))


def render_attention_map(result: AttentionMap, references: Sequence[ImageLike] | torch.Tensor,
                         face: ImageLike | torch.Tensor | None = None) -> Image.Image:
    """The references side by side with the point's attention as a heat map over each (one colour
    scale for all, so the hottest reference stands out), each captioned with its mass; with
    ``face``, the face first with the point marked. Returns an RGB PIL image."""
    tiles = _tiles(references, "references")
    if len(tiles) != result.per_reference.shape[0]:
        raise ValueError(f"references: {len(tiles)} images for a map over {result.per_reference.shape[0]}")
    density = result.per_reference.float().numpy()
    peak = float(density.max())
    panels = [(_heat(tile, density[r], peak), f"ref {r + 1}: {100 * result.mass[r]:.1f}%")
              for r, tile in enumerate(tiles)]
    if face is not None:
        tile = _tiles([face] if not isinstance(face, (torch.Tensor, list, tuple)) else face, "face")[0].copy()
        h, w = result.image_hw
        cx, cy = (result.point[0] + 0.5) * TILE / w - 0.5, (result.point[1] + 0.5) * TILE / h - 0.5
        cv2.circle(tile, (int(round(cx)), int(round(cy))), 7, (255, 255, 255), 3, cv2.LINE_AA)
        cv2.circle(tile, (int(round(cx)), int(round(cy))), 7, (255, 0, 0), 2, cv2.LINE_AA)
        panels.insert(0, (tile, f"point ({result.point[0]:g}, {result.point[1]:g})"))
    canvas = Image.new("RGB", (TILE * len(panels), TILE + CAPTION), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (tile, caption) in enumerate(panels):
        canvas.paste(Image.fromarray(tile), (i * TILE, 0))
        draw.text((i * TILE + 6, TILE + 5), caption, fill="black")
    return canvas
