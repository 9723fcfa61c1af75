"""Training: the :class:`TrainConfig` and :func:`train` (Accelerate loop, exact resume, run logs).

Run folder: ``OUT/config.yaml``, ``OUT/metrics.jsonl``, ``OUT/tb/``, ``OUT/samples/step_XXXXXXX.png``,
``OUT/checkpoints/step_XXXXXXX/`` (model dir + ``training_state/``), ``OUT/final/`` (model dir).
"""
from .config import TrainConfig
from .reporting import read_metrics
from .trainer import train

__all__ = ["TrainConfig", "train", "read_metrics"]
