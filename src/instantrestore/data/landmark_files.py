"""Landmark side files: ``<image stem>.json`` next to an image, holding
``{"landmarks": [[x, y], ...], "width": W, "height": H, "num_ibug": 68}`` in pixel coordinates
(pixel centres at integers; the 68 iBUG points first, then any extra points such as synthetic marks).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..utils.files import atomic_write_text
from .synthetic import NUM_IBUG


def landmarks_path(image_path: str | os.PathLike) -> Path:
    """The side file holding ``image_path``'s landmarks: same folder and stem, ``.json``."""
    return Path(image_path).with_suffix(".json")


def write_landmarks(path: str | os.PathLike, landmarks: np.ndarray, width: int, height: int,
                    num_ibug: int = NUM_IBUG) -> None:
    """Write landmarks [P, 2] (pixel x, y of an image ``width`` x ``height``) as a side file, atomically."""
    rows = [[round(float(x), 3), round(float(y), 3)] for x, y in np.asarray(landmarks).reshape(-1, 2)]
    atomic_write_text(path, json.dumps({"landmarks": rows, "width": int(width), "height": int(height),
                                        "num_ibug": int(num_ibug)}))


def read_landmarks(path: str | os.PathLike) -> tuple[np.ndarray, int, int] | None:
    """(landmarks float32 [P, 2], width, height) from a side file, or None when there is none.

    Raises ValueError naming the file when it exists but is malformed.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        pts = np.asarray(data["landmarks"], dtype=np.float32).reshape(-1, 2)
        return pts, int(data["width"]), int(data["height"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed landmarks file ({exc})") from exc

