"""The record ``instantrestore prepare-data`` leaves at a dataset's root: ``ROOT/prepared.json``.

It holds the settings of the run, what was measured of every image (keyed by its path relative
to ROOT, POSIX style), and ``excluded``: the images that failed a check, with the reason
(unreadable, too small, not square, no face, several faces, duplicate, ...). The training
datasets leave the excluded images out (``excluded_images``); deleting the file trains on all.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..utils.files import atomic_write_text

log = logging.getLogger(__name__)

MANIFEST_NAME = "prepared.json"
MANIFEST_FORMAT = 1
PREPARE_COMMAND = "instantrestore prepare-data"


def manifest_path(root: str | os.PathLike) -> Path:
    """Where a dataset's manifest lives: ``ROOT/prepared.json``."""
    return Path(root) / MANIFEST_NAME


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of the dataset at ``root``, or None when there is none. A file that is not a
    manifest (unreadable JSON, another format) is reported in the log and read as None."""
    path = manifest_path(root)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        log.warning("%s is not a readable prepare-data manifest (%s); ignoring it", path, exc)
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        log.warning("%s is not a format-%d prepare-data manifest; ignoring it", path, MANIFEST_FORMAT)
        return None
    return data


def write_manifest(root: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` (with the format number) as the manifest of ``root``, atomically."""
    path = manifest_path(root)
    atomic_write_text(path, json.dumps({"format": MANIFEST_FORMAT, **data}, indent=1, sort_keys=False) + "\n")
    return path


def excluded_images(root: str | os.PathLike) -> dict[Path, str]:
    """{absolute image path (``os.path.abspath``): reason} of the images prepare-data left out of the dataset at ``root``
    (empty without a manifest)."""
    data = read_manifest(root)
    if not data:
        return {}
    if not data.get("complete"):
        log.warning("%s: prepare-data did not finish here (killed?); run `%s %s` again to finish it",
                    manifest_path(root), PREPARE_COMMAND, root)
    base = Path(os.path.abspath(root))  # not resolve(): a symlinked image keeps its dataset path
    return {base / key: str(reason) for key, reason in dict(data.get("excluded") or {}).items()}
