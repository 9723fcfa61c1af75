"""Landmark side files: ``<image stem>.json`` next to an image, holding
``{"landmarks": [[x, y], ...], "width": W, "height": H, "num_ibug": 68}`` in pixel coordinates
(pixel centres at integers; the 68 iBUG points first, then any extra points such as synthetic marks
or mediapipe's 478; NaN rows are written as null). ``instantrestore prepare-data`` adds what it
measured of the image (``sha256``, ``dhash``, ``faces``, ...: ``data.prepare_checks.ImageFacts``)
and ``source`` (which landmarks), so that a re-run knows the file is up to date.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.files import atomic_write_text
from .synthetic import NUM_IBUG


def landmarks_path(image_path: str | os.PathLike) -> Path:
    """The side file holding ``image_path``'s landmarks: same folder and stem, ``.json``."""
    return Path(image_path).with_suffix(".json")


def write_landmarks(path: str | os.PathLike, landmarks: np.ndarray, width: int, height: int,
                    num_ibug: int = NUM_IBUG, extra: Mapping[str, Any] | None = None) -> None:
    """Write landmarks [P, 2] (pixel x, y of an image ``width`` x ``height``; NaN = unknown) as a
    side file, atomically. ``extra``: more JSON keys (e.g. what prepare-data measured)."""
    atomic_write_text(path, landmarks_text(landmarks, width, height, num_ibug, extra))


def landmarks_text(landmarks: np.ndarray, width: int, height: int, num_ibug: int = NUM_IBUG,
                   extra: Mapping[str, Any] | None = None) -> str:
    """The text of the side file ``write_landmarks`` writes."""
    rows = [[_coordinate(x), _coordinate(y)] for x, y in np.asarray(landmarks, np.float64).reshape(-1, 2)]
    data = {"landmarks": rows, "width": int(width), "height": int(height), "num_ibug": int(num_ibug)}
    return json.dumps({**data, **(extra or {})})


def _coordinate(value: float) -> float | None:
    return round(float(value), 3) if np.isfinite(value) else None


def read_side_file(path: str | os.PathLike) -> dict[str, Any] | None:
    """The raw JSON object of a side file, or None when there is none or it is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def read_landmarks(path: str | os.PathLike) -> tuple[np.ndarray, int, int] | None:
    """(landmarks float32 [P, 2], width, height) from a side file, or None when there is none.

    Raises ValueError naming the file when it exists but is malformed.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        pts = np.asarray([[np.nan if v is None else v for v in row] for row in data["landmarks"]],
                         dtype=np.float32).reshape(-1, 2)
        return pts, int(data["width"]), int(data["height"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed landmarks file ({exc})") from exc

