"""instantrestore: reference-based face restoration in one forward pass.

The package has two towers: :mod:`instantrestore.generator` (the one-step model and its parts)
and :mod:`instantrestore.pipeline` (whole photos: albums, matching, strength, folder jobs), over
:mod:`instantrestore.faces` (detection, alignment, paste) and :mod:`instantrestore.utils`
(image and file boundary). The top-level names are imported on first use, so that
``import instantrestore.faces`` does not load diffusers and peft.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY_NAMES: dict[str, str] = {
    "InstantRestore": "instantrestore.generator.model",
    "GeneratorOutput": "instantrestore.generator.model",
    "ReferenceCache": "instantrestore.generator.reference_cache",
    "ModelConfig": "instantrestore.generator.config",
    "backbone_config": "instantrestore.generator.config",
    "FaceRestorer": "instantrestore.pipeline.face_restorer",
}

__all__ = [*_LAZY_NAMES, "__version__"]

if TYPE_CHECKING:
    from .generator.config import ModelConfig, backbone_config  # noqa: F401
    from .generator.model import GeneratorOutput, InstantRestore  # noqa: F401
    from .generator.reference_cache import ReferenceCache  # noqa: F401
    from .pipeline.face_restorer import FaceRestorer  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'instantrestore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))
