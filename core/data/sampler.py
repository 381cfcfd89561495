"""The report's class-balanced sampler, shardable over training processes."""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class ClassBalancedSampler(Sampler[int]):
    """Draw clips with replacement with weight 1/count(class), so every class is drawn equally
    often on average, even when the split is unbalanced (the report's ``get_sampler``).

    With ``num_replicas`` processes, every process makes the same draw (same generator seed) and
    takes every ``num_replicas``-th clip from ``rank`` on: the shards are disjoint, the same size,
    and together keep the class balance of one process's draw."""

    def __init__(self, labels: Sequence[int], generator: torch.Generator | None = None,
                 num_replicas: int = 1, rank: int = 0) -> None:
        counts = Counter(labels)
        self.weights = torch.tensor([1.0 / counts[label] for label in labels],
                                    dtype=torch.double)
        self.generator, self.num_replicas, self.rank = generator, num_replicas, rank
        self.per_replica = math.ceil(len(labels) / num_replicas)

    def __iter__(self) -> Iterator[int]:
        drawn = torch.multinomial(self.weights, self.per_replica * self.num_replicas,
                                  replacement=True, generator=self.generator)
        return iter(drawn[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_replica

