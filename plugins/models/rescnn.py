"""A compact residual CNN on log-mel features, sized to train ESC-50 on a laptop CPU (the
``laptop`` recipe) and widened for a GPU (the ``gpu`` recipe).

Sources of each choice:
- Residual basic blocks (two 3x3 conv-BN layers and an identity or 1x1 shortcut): He et al.,
  "Deep residual learning for image recognition" (CVPR 2016); they train faster and deeper than
  the plain VGG-style stacks of the report's CNNs.
- One 3x3 conv-BN-ReLU at full resolution, then 2x2 average pooling between stages, and the
  clip summary "mean over frequency, then max plus mean over time" before one linear layer:
  the CNN family of PANNs (Kong et al., "PANNs: Large-scale pretrained audio neural networks",
  IEEE/ACM TASLP 2020), whose ResNet and CNN models use this pooling; max picks the loudest
  event, mean keeps the texture.
- Widths doubling per stage from 32 (32, 64, 128, 256): measured on 2 CPU cores as about 13 s
  per epoch of 1200 ESC-50 clips (64 bands, 216 frames, bf16 autocast) against 39 s for a
  width-48 start (docs/results.md, "How the laptop recipe was chosen").
- Dropout before the classifier (0.3): the usual regularizer of the PANNs heads.
Padded frames are zeroed before every convolution and pooled out of the time summary, and valid
lengths follow the poolings, so a clip scores the same alone and in any padded batch; where no
clip is padded nothing is masked, and in float32 eval each batch norm is folded into its
convolution (``layers.conv_bn``): together 1.2x faster scoring on AVX2, 1.8x with AVX-512
(docs/analyze.md, "Speed"). The network is split where time is still a sequence
(``step_embeddings``) and where it is summed up (``pool_steps``), so ``esc50 analyze`` computes
the steps of a recording once and pools each window from them (docs/plugins.md,
"register_models").
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import torch
from torch import nn

from esc50 import TaskConfig, hookimpl
from esc50.plugins.models.layers import (conv_bn, conv_bn_sequential, fills_every_frame,
                                         masked_max, masked_mean, zero_padding)

ESC50_PLUGIN_API = 4
TRAINED = Path(__file__).with_name("trained.toml")  # the models shipped trained (trained/)


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut (1x1 conv-BN when the width changes), then ReLU."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = (nn.Identity() if channels_in == channels_out else nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out)))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """``lengths``: each clip's valid steps, ``None`` where no clip is padded."""
        y = torch.relu(conv_bn(self.conv1, self.bn1, zero_padding(x, lengths)))
        y = conv_bn(self.conv2, self.bn2, zero_padding(y, lengths))
        shortcut = conv_bn_sequential(self.shortcut, x)  # an identity as it is
        return torch.relu(y + shortcut)


class ResCNN(nn.Module):
    """Compact residual CNN: a conv stem, residual stages, max+mean pooling over time."""

    name = "rescnn"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 widths: tuple[int, ...] = (32, 64, 128, 256), blocks: int = 1,
                 dropout: float = 0.3) -> None:
        """Options:
        widths: channels of the stem, then of each residual stage (one stage per later entry)
        blocks: residual blocks per stage
        dropout: dropout rate before the classifier
        """
        super().__init__()
        if len(widths) < 2 or min(widths) <= 0:
            raise ValueError(f"widths={list(widths)} needs a stem width and at least one stage, "
                             "all positive")
        if blocks < 1:
            raise ValueError(f"blocks={blocks} must be at least 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        channels = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()
        for width_in, width in zip(widths, widths[1:]):
            self.stages.append(nn.ModuleList(
                ResidualBlock(width_in if i == 0 else width, width) for i in range(blocks)))
        self.pool = nn.AvgPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], config.num_classes)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        return self.pool_steps(*self.step_embeddings(features, frame_lengths))

    def step_embeddings(self, features: torch.Tensor, frame_lengths: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, C, F, T] features -> [B, widths[-1], about T / 2 ** stages] embeddings of steps
        along time (frequency summarized) and their valid lengths."""
        lengths = frame_lengths.clamp(1, features.shape[-1])
        # Where no clip is padded there is nothing to zero, before and after every pooling.
        padded = not fills_every_frame(lengths, features.shape[-1])
        x = conv_bn_sequential(self.stem, zero_padding(features, lengths if padded else None))
        for stage in self.stages:
            if x.shape[-1] >= 2 and x.shape[-2] >= 2:  # pool before every stage while it can
                x = self.pool(zero_padding(x, lengths if padded else None))
                lengths = (lengths // 2).clamp(min=1)
            for block in stage:
                x = block(x, lengths if padded else None)
        return x.mean(dim=2), lengths

    def pool_steps(self, steps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Max plus mean over the valid steps, then the classifier: logits [B, classes]."""
        x = masked_max(steps, lengths) + masked_mean(steps, lengths)
        return self.classifier(self.dropout(x))


@hookimpl
def register_models(register):
    register(ResCNN)


@hookimpl
def register_trained_models(register):
    """The trained models esc50 ships with this network (trained.toml: each one's folder,
    sha256, description and licence)."""
    for name, entry in trained_models().items():
        register(name, TRAINED.parent / entry["path"], entry["checksum"],
                 entry.get("description", ""), entry.get("licence", ""))


def trained_models() -> dict[str, dict[str, str]]:
    with TRAINED.open("rb") as handle:
        return tomllib.load(handle)
