"""The face work of ``prepare-data``: find the faces of one image, then its landmarks (dlib's 68
iBUG points, optionally followed by mediapipe's 478) on the aligned crop training will read.

Aligned crops (the default) are searched with HOG on the crop itself (at most 512 px a side,
no upsampling: an aligned face fills 61% of the side), with dlib's CNN detector when HOG finds
nothing. Photos to align are searched as ``faces.detect_faces`` does, and the largest face is
warped to an FFHQ crop (``faces.align_face``); its landmarks are the photo's mapped into the crop.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np

from ..faces.align import align_face, apply_affine
from ..faces.detect import detect_faces, face_boxes, landmarks_in_box
from .prepare_checks import FACE_SHARE

LANDMARK_KINDS = {"dlib": "dlib68", "dense": "dlib68+mediapipe478"}
NUM_DENSE = 478
ALIGNED_MAX_SIDE = 512


@dataclass(frozen=True, eq=False)
class FaceFit:
    """The faces of one image: ``faces`` (at least ``FACE_SHARE`` the largest's size), the largest
    box's side ``face_size`` (source pixels), its ``detector``, its ``landmarks`` [P, 2] in pixels
    of ``image`` (None when no face), and ``image``: the aligned crop (or the input, not aligning)."""

    faces: int
    face_size: float | None
    detector: str | None
    landmarks: np.ndarray | None = field(repr=False)
    image: np.ndarray = field(repr=False)


def check_landmark_kind(kind: str) -> str:
    """The side files' ``source`` name for ``kind`` ("dlib" or "dense"); ValueError for another,
    and for "dense" without mediapipe installed (with the install command)."""
    if kind not in LANDMARK_KINDS:
        raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_KINDS)}, got {kind!r}")
    if kind == "dense" and not mediapipe_installed():
        raise ValueError("--landmarks dense needs mediapipe: pip install 'instantrestore[dense]' "
                         "(mediapipe==0.10.14); or use --landmarks dlib (68 points)")
    return LANDMARK_KINDS[kind]


def mediapipe_installed() -> bool:
    """Whether the optional mediapipe package (dense landmarks) can be imported."""
    return importlib.util.find_spec("mediapipe") is not None


def _count(sizes: list[float]) -> int:
    return sum(1 for s in sizes if s >= FACE_SHARE * max(sizes)) if sizes else 0


def _with_dense(image: np.ndarray, points68: np.ndarray, dense: bool) -> np.ndarray:
    """The 68 points, then (``dense``) mediapipe's 478 of the same crop, NaN where it finds none."""
    if not dense:
        return points68
    from ..faces.detect import dense_landmarks

    found = dense_landmarks(image, max_faces=1)
    extra = found[0] if found else np.full((NUM_DENSE, 2), np.nan)
    return np.concatenate([points68, extra], axis=0)


def fit_aligned_crop(image: np.ndarray, dense: bool = False) -> FaceFit:
    """Faces and landmarks of an aligned crop (uint8 RGB), in its own pixels."""
    boxes = face_boxes(image, max_side=ALIGNED_MAX_SIDE, upsample=0, fallback="cnn")
    if not boxes:
        return FaceFit(0, None, None, None, image)
    sizes = [max(b[2] - b[0], b[3] - b[1]) for b, _, _ in boxes]
    main = int(np.argmax(sizes))
    points = landmarks_in_box(image, boxes[main][0], 68)
    return FaceFit(_count(sizes), float(sizes[main]), boxes[main][2], _with_dense(image, points, dense), image)


def fit_and_align(image: np.ndarray, size: int, dense: bool = False) -> FaceFit:
    """Faces of a photo (uint8 RGB, any shape); the largest aligned to a ``size`` crop, whose
    landmarks are returned in crop pixels."""
    faces = detect_faces(image)
    if not faces:
        return FaceFit(0, None, None, None, image)
    main = faces[0]  # largest first
    aligned = align_face(image, main, size)
    points = apply_affine(aligned.matrix, main.landmarks68)
    return FaceFit(_count([f.size for f in faces]), float(main.size), main.detector,
                   _with_dense(aligned.crop, points, dense), aligned.crop)
