"""Face detection and landmarks on real photos with dlib's pretrained models.

Models come from the ``face_recognition_models`` wheel (no download): the HOG detector
built into dlib, the MMOD CNN detector as a fallback for faces HOG misses, and the
68- and 5-point shape predictors. Dense 478-point landmarks come from mediapipe's
face mesh when the ``dense`` extra is installed.

Images here are uint8 RGB arrays (H, W, 3); coordinates are (x, y) pixels, float64.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# Face box of dlib's HOG detector in an FFHQ-aligned crop, as fractions of the crop side
# (x0, y0, x1, y1). Measured on the 9 obama/aligned_references and 20 celebref references
# (std <= 0.034). Lets the shape predictors run on aligned crops where detection fails.
FFHQ_CROP_BOX = (0.184, 0.296, 0.794, 0.905)


def model_file(name: str) -> str:
    """Path of a model file shipped in the face_recognition_models wheel.

    The package itself is not imported: its __init__ needs pkg_resources, which recent
    setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face_recognition_models is not installed: pip install face_recognition_models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file missing from face_recognition_models")
    return str(path)


def load_dlib():
    """The dlib module (imported on first use; ImportError says how to install it)."""
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is a core dependency
        raise ImportError("dlib is not installed: pip install dlib-bin") from exc
    return dlib


@functools.lru_cache(maxsize=None)
def _hog():
    return load_dlib().get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def _cnn():
    return load_dlib().cnn_face_detection_model_v1(model_file("mmod_human_face_detector.dat"))


@functools.lru_cache(maxsize=None)
def shape_predictor(points: int):
    """dlib's 68- or 5-point shape predictor (cached; models are read once per process)."""
    names = {68: "shape_predictor_68_face_landmarks.dat", 5: "shape_predictor_5_face_landmarks.dat"}
    if points not in names:
        raise ValueError(f"shape predictor has 68 or 5 points, not {points}")
    return load_dlib().shape_predictor(model_file(names[points]))


@dataclass(frozen=True, eq=False)  # array fields: compare explicitly, not with ==
class Face:
    """One detected face in photo coordinates.

    box: (x0, y0, x1, y1) float pixels; landmarks68: (68, 2); landmarks5: (5, 2) in dlib's
    5-point order (right-eye corners 2, left-eye corners 2, nose base); detector: 'hog' or 'cnn'.
    """

    box: tuple[float, float, float, float]
    landmarks68: np.ndarray = field(repr=False)
    landmarks5: np.ndarray = field(repr=False)
    score: float = 0.0
    detector: str = "hog"

    @property
    def size(self) -> float:
        """Face size in pixels: the larger side of the box."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def to_json(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "size": round(float(self.size), 2),
            "score": round(float(self.score), 4),
            "detector": self.detector,
            "landmarks68": np.round(self.landmarks68, 2).tolist(),
            "landmarks5": np.round(self.landmarks5, 2).tolist(),
        }


def _check_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected a uint8 RGB array (H, W, 3), got {type(image).__name__} {shape}")
    return np.ascontiguousarray(image)


def _shape_to_array(shape) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def landmarks_in_box(image: np.ndarray, box, points: int = 68) -> np.ndarray:
    """Run the ``points``-point shape predictor inside ``box`` (x0, y0, x1, y1); returns (points, 2)."""
    image = _check_rgb(image)
    rect = load_dlib().rectangle(*(int(round(v)) for v in box))
    return _shape_to_array(shape_predictor(points)(image, rect))


def face_boxes(image: np.ndarray, max_side: int = 800, upsample: int = 1,
               fallback: str = "cnn") -> list[tuple[tuple[float, float, float, float], float, str]]:
    """The face boxes of ``detect_faces`` without landmarks: (box (x0, y0, x1, y1), score, detector)
    per face, in the detector's order (see ``detect_faces`` for the arguments)."""
    image = _check_rgb(image)
    if fallback not in ("cnn", "none"):
        raise ValueError(f"fallback must be 'cnn' or 'none', not {fallback!r}")
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    rects, scores, _ = _hog().run(small, upsample, 0.0)
    found = [(r, s, "hog") for r, s in zip(rects, scores)]
    if not found and fallback == "cnn":
        # upsampling costs 4x: on CPU MMOD takes ~3 s for an 800 px photo at 1x, ~13 s at 2x
        cnn_upsample = upsample if max(small.shape[:2]) <= 400 else 0
        found = [(d.rect, d.confidence, "cnn") for d in _cnn()(small, cnn_upsample)]
    return [(tuple(float(v) / scale for v in (r.left(), r.top(), r.right(), r.bottom())), float(score), name)
            for r, score, name in found]


def detect_faces(
    image: np.ndarray,
    max_side: int = 800,
    upsample: int = 1,
    fallback: str = "cnn",
) -> list[Face]:
    """Detect every face in an RGB uint8 photo, largest first, with 68- and 5-point landmarks.

    Detection runs on a copy downscaled to ``max_side`` pixels (HOG cost grows with area)
    and boxes are mapped back; landmarks are fitted at full resolution. When HOG finds
    nothing, ``fallback='cnn'`` retries with dlib's MMOD CNN detector (slower, handles
    harder poses); ``'none'`` returns the empty list. No face gives an empty list.
    """
    image = _check_rgb(image)
    faces = []
    for box, score, name in face_boxes(image, max_side, upsample, fallback):
        faces.append(Face(
            box=box,
            landmarks68=landmarks_in_box(image, box, 68),
            landmarks5=landmarks_in_box(image, box, 5),
            score=float(score),
            detector=name,
        ))
    return sorted(faces, key=lambda f: -f.size)


def aligned_landmarks(crop: np.ndarray, detect: bool = True) -> np.ndarray:
    """68 landmarks of the face in an FFHQ-aligned crop (uint8 RGB, square), shape (68, 2).

    Uses the detected box when ``detect`` and HOG finds a face; otherwise the fixed box
    FFHQ alignment puts the face in (``FFHQ_CROP_BOX``), so degraded crops still get landmarks.
    """
    crop = _check_rgb(crop)
    if detect:
        rects = _hog()(crop, 0)
        if len(rects):
            r = max(rects, key=lambda r: r.width())
            return landmarks_in_box(crop, (r.left(), r.top(), r.right(), r.bottom()), 68)
    return landmarks_in_box(crop, canonical_box(crop.shape[1], crop.shape[0]), 68)


def canonical_box(width: int, height: int) -> tuple[float, float, float, float]:
    """``FFHQ_CROP_BOX`` in pixels of a ``width`` x ``height`` aligned crop."""
    x0, y0, x1, y1 = FFHQ_CROP_BOX
    return (x0 * width, y0 * height, x1 * width, y1 * height)


def dense_landmarks(image: np.ndarray, max_faces: int = 4) -> list[np.ndarray]:
    """478 dense landmarks (x, y pixels) per face from mediapipe's face mesh; needs the ``dense`` extra.

    Returns one (478, 2) array per face (an empty list when none is found).
    """
    image = _check_rgb(image)
    try:
        from mediapipe.python.solutions import face_mesh
    except ImportError as exc:
        raise ImportError(
            "dense landmarks need mediapipe: pip install 'instantrestore[dense]' (mediapipe==0.10.14)") from exc
    h, w = image.shape[:2]
    with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True) as mesh:
        result = mesh.process(image)
    out = []
    for lms in result.multi_face_landmarks or []:
        out.append(np.array([[p.x * w, p.y * h] for p in lms.landmark], dtype=np.float64))
    return out
