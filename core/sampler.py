"""The report's class-balanced sampler."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch
from torch.utils.data import WeightedRandomSampler


def class_balanced_sampler(labels: Sequence[int],
                           generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """Draw clips with weight 1/count(class), so every class is drawn equally often on average,
    even when the split is unbalanced (the report's ``get_sampler``)."""
    counts = Counter(labels)
    weights = torch.tensor([1.0 / counts[label] for label in labels], dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True,
                                 generator=generator)
