"""Reference strength from the input: how degraded a face looks, and how much to lean on references.

``estimate_degradation`` is a cheap no-reference measure: the share of a face's band-pass energy
that lies in its three finest octaves (a Laplacian pyramid of the grey image, five levels). Blur
and downsampling (eq. 9's ``k_sigma`` and ``r``) empty the fine octaves first, so the share falls
as a face loses resolution; it needs no sharp copy of the same face, and for faces it barely
depends on the crop size (clean synthetic faces give 0.41 at 128 px, 0.36 at 512 px). The share
is mapped to [0, 1] on a log scale between ``SHARP_FINE_SHARE`` (sharp faces: 0) and
``FLAT_FINE_SHARE`` (nothing left above an eighth of the sampling rate: 1).

``auto_strength`` turns that into a strength as RestorerID scales its identity branch with the
degradation level: a clean face keeps its own detail (``AUTO_MIN_STRENGTH``), a face degraded as
much as the benchmark's ``sr8`` inputs or more gets the paper's full strength.

This module also owns the strength *setting* of every front-end (CLI, ``FaceRestorer``, web UI):
``parse_strength`` is its one grammar (a number in [0, 1] or ``'auto'``, any case),
``resolve_strength`` turns a setting into the value for one face, and ``face_strength`` decides
that a face without references is restored blind (no strength to weigh).
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
import torch
from PIL import Image

from ..utils.images import load_image

__all__ = ["estimate_degradation", "auto_strength", "parse_strength", "resolve_strength", "face_strength",
           "fine_energy_share"]

Face = torch.Tensor | np.ndarray | Image.Image | str | os.PathLike
AUTO = "auto"
STRENGTH_HELP = "a number in [0, 1] or 'auto' (1: follow the references fully, 0: blind)"

# Calibration (``python benchmarks/strength_sweep.py --calibrate``): synthetic faces
# (data/synthetic.py, world 7, 32 people, photo 0) at 128 px, one random draw of each preset per
# face; median fine-energy share -> median estimate_degradation (512 px, 16 people, in brackets):
#   clean 0.414 -> 0.00 (0.06) | moderate 0.227 -> 0.25 (0.28) | sr4 0.205 -> 0.30 (0.29)
#   sr8 0.147 -> 0.44 (0.43) | sr16 0.070 -> 0.76 (0.76) | paper 0.069 -> 0.76 (0.65) | severe 0.044 -> 0.96 (0.90)
SHARP_FINE_SHARE = 0.41  # median over clean synthetic faces, 128 px
FLAT_FINE_SHARE = 0.04   # about the median of the `severe` preset (0.044): nothing left in the fine octaves
PYRAMID_LEVELS = 5
FINE_LEVELS = 3

AUTO_MIN_STRENGTH = 0.25  # a sharp face: references only nudge it
AUTO_CLEAN = 0.1          # degradation up to which a face counts as clean (sharp faces measure 0-0.1)
AUTO_FULL = 0.44          # the median `sr8` degradation (the benchmark's inputs): full strength from here


def _grey(face: Face) -> np.ndarray:
    """Any accepted face -> float32 (H, W) grey levels 0-255."""
    if isinstance(face, (str, os.PathLike)):
        face = load_image(face)
    if isinstance(face, Image.Image):
        face = np.asarray(face.convert("RGB"))
    if isinstance(face, torch.Tensor):
        if face.ndim == 4 and face.shape[0] == 1:
            face = face[0]
        if face.ndim != 3 or face.shape[0] != 3 or not face.is_floating_point():
            raise ValueError(f"face: expected one image tensor [3, H, W] or [1, 3, H, W] in [-1, 1], got "
                             f"{face.dtype} {tuple(face.shape)}")
        rgb = ((face.detach().float().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).cpu().numpy()
    elif isinstance(face, np.ndarray):
        if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
            raise ValueError(f"face: expected a uint8 (H, W, 3) RGB array, got {face.dtype} {face.shape}")
        rgb = face.astype(np.float32)
    else:
        raise TypeError(f"face: expected a tensor, a uint8 array, a PIL image or an image path, got {type(face).__name__}")
    if min(rgb.shape[:2]) < 2 ** PYRAMID_LEVELS:
        raise ValueError(f"face: {rgb.shape[1]}x{rgb.shape[0]} is too small to measure; need at least "
                         f"{2 ** PYRAMID_LEVELS} px a side")
    return cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)


def fine_energy_share(face: Face) -> float:
    """Share of the Laplacian-pyramid band energy (mean square per level, ``PYRAMID_LEVELS`` levels)
    in the ``FINE_LEVELS`` finest levels, in [0, 1]; 0 for a flat image."""
    grey = _grey(face)
    energies = []
    for _ in range(PYRAMID_LEVELS):
        down = cv2.pyrDown(grey)
        band = grey - cv2.pyrUp(down, dstsize=(grey.shape[1], grey.shape[0]))
        energies.append(float(np.mean(band.astype(np.float64) ** 2)))
        grey = down
    total = sum(energies)
    return sum(energies[:FINE_LEVELS]) / total if total > 0 else 0.0


def estimate_degradation(face: Face) -> float:
    """How degraded a face crop looks, in [0, 1]: 0 = as sharp as a clean face, 1 = no detail finer
    than an eighth of the sampling rate (see the module docstring for the measure and calibration).

    face: one aligned crop - a tensor [3, H, W] or [1, 3, H, W] in [-1, 1], a uint8 (H, W, 3) RGB
    array, a PIL image or an image path, at least 32 px a side. Noise added at full resolution reads as detail
    (it fills the fine octaves), so a noisy but sharp photo scores low.
    """
    share = fine_energy_share(face)
    if share <= FLAT_FINE_SHARE:
        return 1.0
    value = math.log(SHARP_FINE_SHARE / share) / math.log(SHARP_FINE_SHARE / FLAT_FINE_SHARE)
    return float(min(1.0, max(0.0, value)))


def strength_for_degradation(degradation: float) -> float:
    """The ``auto`` mapping: ``AUTO_MIN_STRENGTH`` up to ``AUTO_CLEAN``, rising linearly to 1 at ``AUTO_FULL``."""
    t = (degradation - AUTO_CLEAN) / (AUTO_FULL - AUTO_CLEAN)
    return float(AUTO_MIN_STRENGTH + (1 - AUTO_MIN_STRENGTH) * min(1.0, max(0.0, t)))


def auto_strength(face: Face) -> float:
    """Reference strength in [AUTO_MIN_STRENGTH, 1] for one face: the more degraded, the more the
    restoration leans on the references (``strength_for_degradation(estimate_degradation(face))``)."""
    return strength_for_degradation(estimate_degradation(face))


def parse_strength(value: float | str) -> float | str:
    """A strength setting in the one grammar every front-end takes: a number in [0, 1] (an int, a
    float or its text, "0.5") as a float, or 'auto' in any case ("AUTO", " Auto ") as ``'auto'``.

    Raises ValueError, with the same message whatever the front-end, for anything else (text that
    is no number, a number out of [0, 1] or NaN, a bool)."""
    number = value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"strength must be {STRENGTH_HELP}, got {value!r}") from None
    if isinstance(number, bool) or not isinstance(number, (int, float, np.integer, np.floating)):
        raise ValueError(f"strength must be {STRENGTH_HELP}, got {value!r}")
    number = float(number)
    if not 0.0 <= number <= 1.0:  # also refuses NaN
        raise ValueError(f"strength must be {STRENGTH_HELP}, got {number!r}")
    return number


def resolve_strength(value: float | str, face: Face | None = None) -> float:
    """A strength setting (:func:`parse_strength`) as the float in [0, 1] for one face: a number as
    given, or for ``'auto'`` :func:`auto_strength` of ``face`` (an image path is read only then)."""
    setting = parse_strength(value)
    if setting != AUTO:
        return setting
    if face is None:
        raise ValueError("strength 'auto' needs the face it is for")
    return auto_strength(face)


def face_strength(value: float | str, face: Face | None, has_references: bool) -> float | None:
    """The strength one face is restored at: None when it has no references (it is restored blind,
    there is nothing to weigh, whatever the setting), else ``resolve_strength(value, face)``."""
    if not has_references:
        return None
    return resolve_strength(value, face)
