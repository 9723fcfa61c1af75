"""Learning-rate schedule as a pure function of the step: nothing to save, so ``--resume`` stays exact.

``constant`` (the paper's and img2img-turbo's default), or ``cosine`` / ``linear`` decay from the
configured rate to ``lr_final_ratio`` of it at the last step; any of them after ``lr_warmup_steps``
of linear warm-up. Ending a run at a low rate keeps its last checkpoint from landing in the middle
of a GAN swing (docs/training.md).
"""
from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "cosine", "linear")


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0, final_ratio: float = 0.0) -> float:
    """Multiplier of the base rate for optimiser step ``step`` (0-based) of ``total_steps``."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return final_ratio + (1.0 - final_ratio) * shape
