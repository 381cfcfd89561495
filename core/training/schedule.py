"""The learning-rate schedule, per optimizer step: an optional linear warm-up, then a cosine decay
to zero or a constant rate."""

from __future__ import annotations

import math


def lr_factor(step: int, warmup_steps: int, total_steps: int, cosine: bool) -> float:
    """Factor of the base learning rate for optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not cosine:
        return 1.0
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
