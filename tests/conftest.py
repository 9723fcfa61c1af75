"""Shared fixtures. Real photos are read from ../shared/realfaces (override with
INSTANTRESTORE_REALFACES); tests that need them skip with a reason where absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT_REALFACES = Path(__file__).resolve().parents[1].parent / "shared" / "realfaces"


@pytest.fixture(scope="session")
def realfaces_dir() -> Path:
    root = Path(os.environ.get("INSTANTRESTORE_REALFACES", _DEFAULT_REALFACES))
    if not root.is_dir():
        pytest.skip(f"real face photos not found at {root} (set INSTANTRESTORE_REALFACES)")
    return root
