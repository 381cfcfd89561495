"""Building blocks shared by the built-in models."""

from __future__ import annotations

import torch
from torch import nn

from esc50.core.contracts import frame_mask


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 3,
                 padding: int | str = 1) -> nn.Sequential:
    """Conv2d -> BatchNorm2d -> ReLU (the unit of the VGG-style and Kumar CNNs)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the last (time) axis of [B, ..., T], counting only the first ``lengths`` steps."""
    mask = frame_mask(x.shape[-1], lengths).view(x.shape[0], *([1] * (x.dim() - 2)), -1)
    return (x * mask).sum(-1) / mask.sum(-1)


def masked_max(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Max over the last (time) axis of [B, ..., T], ignoring padded steps."""
    mask = frame_mask(x.shape[-1], lengths).view(x.shape[0], *([1] * (x.dim() - 2)), -1)
    return x.masked_fill(~mask, float("-inf")).amax(-1)


def pad_time(features: torch.Tensor, frames: int) -> torch.Tensor:
    """Zero-pad the time axis of [B, C, F, T] up to ``frames`` (no-op when already longer)."""
    missing = frames - features.shape[-1]
    return nn.functional.pad(features, (0, missing)) if missing > 0 else features
