"""instantrestore: reference-based face restoration in one forward pass."""
from __future__ import annotations

__version__ = "0.1.0"
