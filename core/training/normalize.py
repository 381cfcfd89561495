"""Per-frequency feature normalization with statistics of the training clips only."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from esc50.core.plugin_api.contracts import frame_mask


class FeatureNormalizer(nn.Module):
    """(features - mean) / std per channel and frequency bin; statistics are buffers, so they
    travel in the checkpoint with the model."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @classmethod
    def fit(cls, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> FeatureNormalizer:
        """Statistics over the valid frames of ``(features [B, C, F, T], frame_lengths [B])``
        batches (float64 sums, so large datasets do not lose precision)."""
        total = total_sq = count = None
        for features, lengths in batches:
            mask = frame_mask(features.shape[-1], lengths).to(torch.float64)[:, None, None, :]
            x = features.to(torch.float64)
            part, part_sq = (x * mask).sum(dim=(0, 3)), (x * x * mask).sum(dim=(0, 3))
            n = mask.sum()
            total = part if total is None else total + part
            total_sq = part_sq if total_sq is None else total_sq + part_sq
            count = n if count is None else count + n
        if total is None:
            raise ValueError("no training features to compute normalization statistics from")
        mean = total / count
        std = (total_sq / count - mean**2).clamp(min=0).sqrt().clamp(min=1e-5)
        return cls(mean[..., None].float(), std[..., None].float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std
