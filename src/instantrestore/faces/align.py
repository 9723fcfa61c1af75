"""FFHQ-style alignment: 68 landmarks -> a square crop, keeping the photo->crop transform.

The crop quad follows the FFHQ recipe (NVlabs/ffhq-dataset, ``recreate_aligned_images``):
eye centres and mouth corners define an oriented square around the face. The quad is
mapped to the crop with one similarity transform (a 2x3 matrix kept for paste-back).
Large faces are first shrunk by an integer factor with area averaging, as FFHQ does,
so the warp never aliases. Where the crop reaches outside the photo, the reflected border
is blurred and faded to the median colour with the distance from the photo edge, as
FFHQ's padding does, so crops of faces near the edge show no sharp mirrored copy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .detect import Face

# FFHQ 512 crop template of facexlib (FaceRestoreHelper, template 'ffhq' at 512): eye centres
# (the person's right eye first, i.e. image left), nose tip, mouth corners; (x, y) pixels.
FFHQ_TEMPLATE_5_512 = np.array([
    [192.98138, 239.94708],
    [318.90277, 240.19360],
    [256.63416, 314.01935],
    [201.26117, 371.41043],
    [313.08905, 371.15118],
])


def template_points(landmarks68: np.ndarray) -> np.ndarray:
    """The 5 points of ``FFHQ_TEMPLATE_5_512`` taken from 68 landmarks: eye centres, nose tip (30), mouth corners."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def ffhq_quad(landmarks68: np.ndarray) -> np.ndarray:
    """Oriented crop square of the FFHQ recipe, corners (4, 2): top-left, bottom-left, bottom-right, top-right."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks (68, 2), got {lm.shape}")
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_transform(quad: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity matrix taking the quad's corners onto the corners of a ``size`` crop."""
    dst = np.array([[0, 0], [0, size], [size, size], [size, 0]], dtype=np.float64)
    matrix, _ = cv2.estimateAffinePartial2D(quad.astype(np.float64), dst, method=cv2.LMEDS)
    return matrix


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (crop -> photo for an alignment matrix)."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


@dataclass(frozen=True, eq=False)  # array fields: compare explicitly, not with ==
class AlignedFace:
    """An aligned crop (uint8 RGB, size x size) and the 2x3 ``matrix`` mapping photo pixels to crop pixels."""

    crop: np.ndarray = field(repr=False)
    matrix: np.ndarray
    face: Face
    size: int

    @property
    def inverse_matrix(self) -> np.ndarray:
        return invert_affine(self.matrix)

    @property
    def landmarks68(self) -> np.ndarray:
        """The detected landmarks in crop coordinates."""
        return apply_affine(self.matrix, self.face.landmarks68)

    def to_json(self) -> dict:
        return {
            **self.face.to_json(),
            "crop_size": self.size,
            "matrix": np.round(self.matrix, 8).tolist(),
            "inverse_matrix": np.round(self.inverse_matrix, 8).tolist(),
            "crop_landmarks68": np.round(self.landmarks68, 2).tolist(),
        }


def align_face(image: np.ndarray, face: Face, size: int = 512) -> AlignedFace:
    """Warp one face of an RGB uint8 photo to an FFHQ-aligned ``size`` x ``size`` crop."""
    quad = ffhq_quad(face.landmarks68)
    matrix = quad_transform(quad, size)
    source, pre = image, np.eye(3)
    # Shrink first when the face is much larger than the crop (FFHQ: shrink = floor(qsize / size * 0.5)).
    shrink = int(np.floor(np.hypot(*(quad[3] - quad[0])) / size * 0.5))
    if shrink > 1:
        h, w = image.shape[:2]
        small_w, small_h = max(1, round(w / shrink)), max(1, round(h / shrink))
        source = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        pre = np.diag([small_w / w, small_h / h, 1.0])
    # photo -> crop == (small -> crop) o (photo -> small)
    small_to_crop = np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(pre)
    crop = cv2.warpAffine(source, small_to_crop[:2], (size, size),
                          flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    inside = cv2.warpAffine(np.full(source.shape[:2], 255, np.uint8), small_to_crop[:2], (size, size),
                            flags=cv2.INTER_NEAREST, borderValue=0)
    if not inside.all():
        crop = _soften_padding(crop, inside)
    return AlignedFace(crop=crop, matrix=matrix, face=face, size=size)


def _soften_padding(crop: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """FFHQ's padding treatment in crop space: blur the reflected border (fading in over
    3% of the side inside the photo) and fade it to the median colour over 30% of the side."""
    size = crop.shape[0]
    out_dist = cv2.distanceTransform((inside == 0).astype(np.uint8), cv2.DIST_L2, 5)  # > 0 outside the photo
    in_dist = cv2.distanceTransform((inside > 0).astype(np.uint8), cv2.DIST_L2, 5)    # > 0 inside the photo
    signed = (out_dist - in_dist)[..., None]
    image = crop.astype(np.float32)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=0.02 * size)
    image += (blurred - image) * np.clip(1.0 + signed / (0.03 * size), 0.0, 1.0)
    median = np.median(crop[inside > 0], axis=0) if inside.any() else np.median(crop.reshape(-1, 3), axis=0)
    image += (median - image) * np.clip(signed / (0.3 * size), 0.0, 1.0)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def align_faces(image: np.ndarray, faces: list[Face], size: int = 512) -> list[AlignedFace]:
    """``align_face`` for each face, in the given order."""
    return [align_face(image, f, size) for f in faces]


# dlib's detectors find faces of 40 px and up (80 px windows, upsampled once); on an image whose
# short side is a few pixels the CNN fails an assertion (or crashes), so such images hold no face.
MIN_DETECTION_SIDE = 32


def can_hold_a_face(shape: tuple[int, ...], max_side: int = 800) -> bool:
    """Whether an image of ``shape`` (H, W, ...), once shrunk to ``max_side`` for detection, is large
    enough for a face to be detected in it (``MIN_DETECTION_SIDE``)."""
    h, w = shape[:2]
    scale = min(1.0, max_side / max(h, w, 1))
    return min(h, w) * scale >= MIN_DETECTION_SIDE


def align_photo(image: np.ndarray, size: int = 512, max_side: int = 800, fallback: str = "cnn",
                largest_only: bool = False) -> list[AlignedFace]:
    """Detect every face of an RGB uint8 photo (largest first) and align each to a ``size`` crop.

    ``max_side`` and ``fallback`` are passed to ``detect_faces``; no face gives an empty list (also
    for an image too small to hold a detectable face, ``can_hold_a_face``).
    """
    from .detect import detect_faces

    if not can_hold_a_face(image.shape, max_side):
        return []
    faces = detect_faces(image, max_side=max_side, fallback=fallback)
    return align_faces(image, faces[:1] if largest_only else faces, size)


def is_aligned_crop(matrix: np.ndarray, side: int, size: int, scale_tol: float = 0.08,
                    rotation_tol_deg: float = 5.0, shift_tol: float = 0.06) -> bool:
    """True when aligning a square ``side`` image gave (nearly) a plain resize to ``size``: the image
    is already an FFHQ-aligned crop. ``matrix`` is that alignment's photo -> crop transform.

    Tolerances: re-aligning the real aligned references (obama, celebref) gives scale 0.99-1.05,
    rotation <= 1.8 degrees and shifts <= 15 px (3 %) at 512 px; a face elsewhere in a photo does not.
    """
    m = np.asarray(matrix, dtype=np.float64)
    expected = size / side
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2])))) / expected
    rotation = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    shift = float(np.hypot(*m[:, 2])) / size
    return abs(scale - 1.0) <= scale_tol and abs(rotation) <= rotation_tol_deg and shift <= shift_tol
