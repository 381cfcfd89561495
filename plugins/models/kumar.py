"""The CNN of Kumar, Khadkevich and Fügen, "Knowledge transfer from weakly labeled audio using
convolutional neural network for sound events and scenes" (ICASSP 2018; code:
github.com/anuragkr90/weak_feature_extractor, class ``weak_mxh64_1024``), the report's
"GitHub model".

Sources of each choice:
- Layers (repository): blocks B1-B5 of two 3x3 conv-BN-ReLU with 16, 32, 64, 128, 256 channels,
  each followed by 2x2 max pooling; B6 one 3x3 conv-BN-ReLU with 512 channels and 2x2 max
  pooling; F1 a 2x2 conv to 1024 channels with BN-ReLU; F2 a 1x1 conv to the classes.
- Segment outputs to a clip prediction (paper, section 2; ``globalpool`` in the repository):
  F2 gives one output per class and time segment; a global pooling over the whole map (max in
  ``weak_mxh64_1024``, the "mx") turns them into the clip's prediction. Padded segments are left
  out of the pooling, and zeroed before every convolution and pooling, so a clip scores the same
  in any padded batch.
- The repository ends F2 with a sigmoid for AudioSet's multi-label targets; ESC-50 is single-label
  and trained with cross-entropy, so this returns the pooled pre-sigmoid scores as logits (the
  sigmoid is monotonic, so max pooling picks the same segment either way).
- The paper uses 128 mel bands; the report uses 64. Pooling rounds up (``ceil_mode``) and F1's
  kernel shrinks to the frequency bins that are left, so any ``n_mels`` and clip length work; for
  128 bands it is exactly the published network.
"""

from __future__ import annotations

import torch
from torch import nn

from esc50.core.config import TaskConfig
from esc50.core.hookspecs import hookimpl
from esc50.plugins.models.layers import (conv_bn_relu, masked_layers, masked_max, masked_mean,
                                         pad_time)

BLOCKS = [(16, 2), (32, 2), (64, 2), (128, 2), (256, 2), (512, 1)]  # (channels, convolutions)
REDUCTION = 2 ** len(BLOCKS)


class Kumar(nn.Module):
    """Kumar et al. 2018 CNN (B1-B6, F1, F2) with global pooling of segment outputs."""

    name = "kumar"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 pooling: str = "max") -> None:
        """Options:
        pooling: how segment outputs are pooled over time (max or mean)
        """
        super().__init__()
        if pooling not in ("max", "mean"):
            raise ValueError(f"pooling={pooling!r} must be 'max' or 'mean'")
        self.pooling = pooling
        channels, bins, _ = input_shape
        layers = []
        for width, convs in BLOCKS:
            for _ in range(convs):
                layers.append(conv_bn_relu(channels, width))
                channels = width
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            bins = -(-bins // 2)
        self.blocks = nn.Sequential(*layers)
        self.f1 = conv_bn_relu(channels, 1024, kernel_size=(min(2, bins), 2), padding=0)
        self.f2 = nn.Conv2d(1024, config.num_classes, kernel_size=1)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        x, segments = masked_layers(self.blocks, pad_time(features, 2 * REDUCTION), frame_lengths)
        x = self.f2(self.f1(x))  # [B, K, F, S]
        scores = x.amax(dim=2) if self.pooling == "max" else x.mean(dim=2)  # [B, K, S]
        segments = segments - 1  # F1's 2-wide kernel drops one segment
        pool = masked_max if self.pooling == "max" else masked_mean
        return pool(scores, segments)


@hookimpl
def register_models(register):
    register(Kumar)
