"""The report's baseline (``SimpleModel``): three 3x3 convolutions with ReLU, 4x4 max pooling,
then three fully connected layers d -> d/4 -> d/64 -> classes.

Fix of the report's code: d is not hard-coded (20904) but follows the input shape. The pooling
is adaptive to the pooled size of the configured clip length, so clips of other lengths (and
padded batches) give the same d; for the configured length it pools like MaxPool2d(4). Each
clip is pooled over its own valid frames, so it scores the same in any padded batch."""

from __future__ import annotations

import torch
from torch import nn

from esc50 import TaskConfig, hookimpl
from esc50.plugins.models.layers import pad_time, per_clip, zero_padding

ESC50_PLUGIN_API = 4


class Baseline(nn.Module):
    """Report's baseline CNN: 3 conv (3x3, ReLU), 4x4 max-pool, 3 fully connected layers."""

    name = "baseline"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 cnn_out_channels: int = 8, kernel: int = 3, pool: int = 4) -> None:
        """Options:
        cnn_out_channels: channels of each convolution (the report's cnn_out_channels)
        kernel: convolution kernel size
        pool: max-pooling size
        """
        super().__init__()
        channels, bins, frames = input_shape
        if cnn_out_channels <= 0:
            raise ValueError(f"option cnn_out_channels={cnn_out_channels} must be positive")
        width = cnn_out_channels
        self.shrink = 3 * (kernel - 1)  # frames the three unpadded convolutions remove
        self.min_frames = self.shrink + pool
        conv_bins, conv_frames = bins - 3 * (kernel - 1), max(frames, self.min_frames) - 3 * (kernel - 1)
        if conv_bins < pool:
            raise ValueError(f"{bins} feature bins are too few for three {kernel}x{kernel} "
                             f"convolutions and {pool}x{pool} pooling")
        self.convs = nn.Sequential(
            nn.Conv2d(channels, width, kernel), nn.ReLU(),
            nn.Conv2d(width, width, kernel), nn.ReLU(),
            nn.Conv2d(width, width, kernel), nn.ReLU())
        self.pool = nn.AdaptiveMaxPool2d((conv_bins // pool, conv_frames // pool))
        d = width * (conv_bins // pool) * (conv_frames // pool)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(d, d // 4), nn.ReLU(),
            nn.Linear(d // 4, max(d // 64, 1)), nn.ReLU(),
            nn.Linear(max(d // 64, 1), config.num_classes))

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        x = self.convs(pad_time(zero_padding(features, frame_lengths), self.min_frames))
        valid = frame_lengths.clamp(min=self.min_frames) - self.shrink
        return self.head(per_clip(self.pool, x, valid))


@hookimpl
def register_models(register):
    register(Baseline)
