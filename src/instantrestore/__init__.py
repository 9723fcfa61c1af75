"""instantrestore: reference-based face restoration in one forward pass."""
from __future__ import annotations

__version__ = "0.1.0"

from .reference_cache import ReferenceCache  # noqa: E402
from .config import ModelConfig, backbone_config  # noqa: E402
from .model import GeneratorOutput, InstantRestore  # noqa: E402

__all__ = ["InstantRestore", "GeneratorOutput", "ReferenceCache", "ModelConfig", "backbone_config", "__version__"]
