"""Applying a run's augmentations to training batches, stage by stage, under a policy.

- ``all`` (default): every augmentation runs, each on the examples its own ``p`` picks.
- ``one-of`` (the report's policy): within each of the wave, power and features stages, each
  example gets one augmentation drawn uniformly from that stage's list plus "none"; that
  augmentation's ``p`` still applies (use ``p=1`` to reproduce the report).
Batch-stage augmentations (mixup) always run on the whole batch.
"""

from __future__ import annotations

from typing import Iterator

import torch

from esc50.core.contracts import Augmentation, Randomness, to_device
from esc50.core.errors import Esc50Error

POLICIES = ("all", "one-of")
STAGES = ("wave", "power", "features", "batch")  # in the order a training batch meets them


class AugmentationPipeline:
    """The augmentations of a run, grouped by stage."""

    def __init__(self, augs: list[Augmentation], policy: str = "all") -> None:
        for aug in augs:
            if aug.stage not in STAGES:
                raise Esc50Error(f"augmentation {type(aug).__name__} has stage {aug.stage!r}; "
                                 f"expected one of {', '.join(STAGES)}")
        self.policy = policy
        self.by_stage = {stage: [a for a in augs if a.stage == stage] for stage in STAGES}

    def __bool__(self) -> bool:
        return any(self.by_stage.values())

    def __iter__(self) -> Iterator[Augmentation]:
        return (aug for stage in STAGES for aug in self.by_stage[stage])

    def transform(self, stage: str, x: torch.Tensor, lengths: torch.Tensor,
                  generator: torch.Generator | Randomness
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the ``wave``, ``power`` or ``features`` augmentations to ``x`` (first axis:
        examples, last: time) whose valid lengths are ``lengths`` [B]; returns both after
        them."""
        augs = self.by_stage[stage]
        if self.policy == "all" or len(augs) == 0:
            for aug in augs:
                x = aug(x, generator)
                lengths = aug.valid_lengths(lengths, x.shape[-1])
            return x, lengths
        draws = Randomness.of(generator).draws
        choice = torch.randint(len(augs) + 1, (x.shape[0],), generator=draws,
                               device=draws.device)
        out, out_lengths = x.clone(), lengths.clone()
        for i, aug in enumerate(augs, start=1):
            picked = (choice == i).nonzero().squeeze(1)  # no wait for the device on the host
            if picked.numel():
                picked = to_device(picked, x)
                out.index_copy_(0, picked, aug(x.index_select(0, picked), generator))
                out_lengths.index_copy_(0, picked, aug.valid_lengths(
                    lengths.index_select(0, picked), x.shape[-1]))
        return out, out_lengths

    def mix(self, features: torch.Tensor, targets: torch.Tensor,
            generator: torch.Generator | Randomness) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the batch-stage augmentations (features and label probabilities together)."""
        for aug in self.by_stage["batch"]:
            features, targets = aug(features, targets, generator)
        return features, targets
