"""Per-step schedules: the learning rate (an optional linear warm-up, then a cosine decay to
zero or a constant rate) and the moving average of the weights."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, warmup_steps: int, total_steps: int, cosine: bool) -> float:
    """Factor of the base learning rate for optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not cosine:
        return 1.0
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def ema_step(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor,
             decay: float) -> torch.Tensor:
    """One exponential-moving-average update. The decay ramps up as min(decay, (1 + n) / (10 + n))
    after n updates, so the random initial weights do not linger in the average of a short run."""
    n = float(num_averaged)
    rate = min(decay, (1.0 + n) / (10.0 + n))
    return averaged * rate + current * (1.0 - rate)
