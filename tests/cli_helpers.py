"""Helpers shared by the CLI tests: run a command in-process, make noise images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from instantrestore.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``instantrestore ARGS``, checking it printed no traceback."""
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        assert "Traceback" not in text and "unexpected error" not in text, text
    return rc, captured.out, captured.err


def noise_image(path: Path, seed: int, shape: tuple[int, int]) -> Path:
    """A seeded RGB noise image written to ``path`` (parents made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
    return path
