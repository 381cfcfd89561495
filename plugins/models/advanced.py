"""The report's "advanced" model: VGG blocks (conv-conv-pool) whose channel count doubles from
block to block, with batch normalization and dropout. The report shows its code only as a
picture; this follows its text: ``blocks`` blocks of two 3x3 conv-BN-ReLU and 2x2 max pooling,
starting at ``base_channels``, then the mean over valid frames and two linear layers. Padded frames are zeroed before every
convolution and pooling, so a clip scores the same in any padded batch."""

from __future__ import annotations

import torch
from torch import nn

from esc50 import TaskConfig, check_range, hookimpl
from esc50.plugins.models.layers import conv_bn_relu, masked_layers, masked_mean, pad_time

ESC50_PLUGIN_API = 4


class Advanced(nn.Module):
    """VGG-style CNN: conv-conv-pool blocks with doubling channels, batch norm and dropout."""

    name = "advanced"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 base_channels: int = 16, blocks: int = 4, dropout: float = 0.3) -> None:
        """Options:
        base_channels: channels of the first block (doubling per block)
        blocks: conv-conv-pool blocks
        dropout: dropout before the classifier
        """
        super().__init__()
        channels, bins, _ = input_shape
        check_range("dropout", dropout, 0.0, 1.0)
        if blocks < 1 or bins < 2 ** blocks:
            raise ValueError(f"{bins} feature bins are too few for {blocks} pooling blocks")
        layers, width = [], base_channels
        for i in range(blocks):
            layers += [conv_bn_relu(channels if i == 0 else width // 2, width),
                       conv_bn_relu(width, width), nn.MaxPool2d(2), nn.Dropout(dropout)]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.reduction = 2 ** blocks
        width //= 2
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(width, config.num_classes))

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        x, lengths = masked_layers(self.features, pad_time(features, self.reduction),
                                   frame_lengths)  # [B, C, F', T'], [B]
        return self.head(masked_mean(x.mean(dim=2), lengths))


@hookimpl
def register_models(register):
    register(Advanced)
