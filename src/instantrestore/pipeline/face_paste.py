"""How restored faces go back into a whole photo: ``PhotoPaste`` (upscale, background upsampler,
colour fix, face mask, small-crop rule), used by ``FaceRestorer.enhance``.

The photo is first enlarged ``upscale`` times by the background upsampler (``pipeline.upsample``;
upscale 1: an exact copy, the background is not changed at all). Each restored face (the model's
own resolution, whatever the face's size in the photo) is then colour-fixed toward its input crop
(``faces.color``, optional) and pasted at the upscaled size through a feathered face-shaped mask from
its 68 landmarks (``faces.mask.face_polygon``; 'square': the aligned crop's square, the old paste),
so every pixel outside the face outline is exactly the background's. A face more than
``faces.paste.MAX_PASTE_ENLARGEMENT`` times larger in the input photo than the model's resolution
(``faces.paste.too_small``: restoring it would lose detail the photo has) is not pasted, as
``instantrestore paste`` refuses such crops, unless ``allow_small``; its report says why and it keeps
the background's pixels. Faces smaller than the model's resolution are restored at it (enlarged).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..faces.align import AlignedFace
from ..faces.color import color_fix, parse_color_fix
from ..faces.mask import face_polygon, polygon_area
from ..faces.paste import (MAX_PASTE_ENLARGEMENT, crop_outline, face_side, paste_enlargement, paste_face_masked, scale_matrix,
                           too_small, upscale_points, upscaled_matrix)
from .upsample import DEFAULT_TILE, ClassicalUpsampler, make_upsampler

MASKS = ("face", "square")
MAX_UPSCALE = 8


def check_upscale(upscale: float) -> float:
    """``upscale`` as a number in [1, ``MAX_UPSCALE``] (ValueError saying so otherwise)."""
    if isinstance(upscale, bool) or not isinstance(upscale, (int, float)) or not 1 <= upscale <= MAX_UPSCALE:
        raise ValueError(f"upscale must be a number from 1 to {MAX_UPSCALE} (1: the photo keeps its size), "
                         f"got {upscale!r}")
    return int(upscale) if float(upscale).is_integer() else float(upscale)


class FaceTooSmall(ValueError):
    """A restored crop would be enlarged too much to paste (see ``PhotoPaste.allow_small``)."""


@dataclass(frozen=True)
class PhotoPaste:
    """upscale: output size over input size (1 to 8). upsampler: the background upsampler
    (``upsample.make_upsampler``; default Lanczos). color: 'none' | 'wavelet' | 'adain' (``faces.color``).
    mask: 'face' (landmark outline) | 'square'. allow_small: paste faces over ``MAX_PASTE_ENLARGEMENT``
    times the model's resolution too (``faces.paste.too_small``); the library's default (every restored face
    pasted, as before), while ``restore`` on the command line refuses them as ``paste`` does (``PasteOptions``)."""

    upscale: float = 1
    upsampler: Any = field(default_factory=ClassicalUpsampler)
    color: str = "wavelet"  # benchmarks/color_fix.py: lower colour error, no identity lost (docs/faces.md)
    mask: str = "face"
    allow_small: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "upscale", check_upscale(self.upscale))
        parse_color_fix(self.color)
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {', '.join(MASKS)}, not {self.mask!r}")

    def settings(self) -> dict:
        """What changes the output pixels, for provenance (a run made otherwise is not taken as done)."""
        made = {"upscale": self.upscale, "bg_upsampler": self.upsampler.name, "color_fix": self.color,
                "face_mask": self.mask}
        if hasattr(self.upsampler, "tile"):  # a model's tiles meet at slightly different values per tile size
            made["bg_tile"] = self.upsampler.tile
        if self.allow_small:  # recorded only when set (the command line's default is False)
            made["allow_small"] = True
        return made

    def background(self, image: np.ndarray, upscale: float) -> np.ndarray:
        """The photo enlarged ``upscale`` times: every pixel no face is pasted over."""
        return self.upsampler(image, upscale)

    def paste(self, out: np.ndarray, face: AlignedFace, restored: np.ndarray, entry: dict,
              upscale: float) -> np.ndarray:
        """``out`` (the background, uint8 RGB at the output size, written in place) with ``restored`` (uint8 RGB (S, S, 3),
        the model's output for ``face.crop``) pasted over ``face``; records in ``entry`` the face's side
        in the input (``face_side``), how many times the model enlarged it (``enlarged``), its side in
        the output (``pasted_side``), how many times the restored crop is enlarged there
        (``paste_scale``), the ``mask`` and ``color_fix`` used and the face ``outline`` (output pixels, the
        only pixels the paste may change: the face's, or the crop's square). Raises ``FaceTooSmall``."""
        side = int(restored.shape[0])
        source_side = face_side(face.matrix, face.size)
        scale = paste_enlargement(face.matrix, face.size, side, upscale)
        entry.update(face_side=round(source_side, 2), enlarged=round(side / source_side, 3),
                     pasted_side=round(source_side * upscale, 2), paste_scale=round(scale, 3))
        if too_small(face.matrix, face.size, side) and not self.allow_small:
            raise FaceTooSmall(f"the face is {source_side:.0f} px in the photo, over {MAX_PASTE_ENLARGEMENT:g}x the "
                               f"{side} px the model restores: restored it would lose detail the photo has; kept "
                               "(pass --allow-small to paste it)")
        if self.color != "none":
            restored = color_fix(restored, face.crop, self.color)
        polygon = upscale_points(face_polygon(face.face.landmarks68), upscale) if self.mask == "face" else None
        if polygon is not None and polygon_area(polygon) < 16:  # no usable landmarks: the square
            polygon = None
        matrix = upscaled_matrix(scale_matrix(face.matrix, face.size, side), upscale)
        entry.update(mask="face" if polygon is not None else "square", color_fix=self.color,
                     outline=(crop_outline(matrix, side) if polygon is None else polygon).tolist())
        return paste_face_masked(out, restored, matrix, polygon, inplace=True)  # ``out``: the background's copy


@dataclass(frozen=True)
class PasteOptions:
    """The paste settings of a folder job as the CLI gives them (``PhotoJob.paste``): ``upscale`` (default
    2, as GFPGAN / CodeFormer), ``bg_upsampler`` ('lanczos' | 'bicubic' | a model file), ``bg_tile``
    (tile side of a model upsampler, input pixels), ``color_fix``, ``face_mask``, ``allow_small``."""

    upscale: float = 2
    bg_upsampler: str = "lanczos"
    bg_tile: int = DEFAULT_TILE
    color_fix: str = "wavelet"
    face_mask: str = "face"
    allow_small: bool = False

    def build(self, device: str | None = None) -> PhotoPaste:
        """The ``PhotoPaste`` (loads a model upsampler on ``device``, default CPU)."""
        upsampler = make_upsampler(self.bg_upsampler, self.bg_tile, device or "cpu")
        return PhotoPaste(self.upscale, upsampler, self.color_fix, self.face_mask, self.allow_small)


def side_by_side(photo: np.ndarray, result: np.ndarray) -> np.ndarray:
    """The before/after image: ``photo`` enlarged to ``result``'s size (nearest: its own pixels, as they
    were) beside ``result``; both uint8 RGB."""
    import cv2

    h, w = result.shape[:2]
    before = photo if photo.shape[:2] == (h, w) else cv2.resize(photo, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([before, result], axis=1)
