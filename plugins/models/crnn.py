"""The report's CRNN-A: a strided convolution, a GRU and additive attention over time.

Fixes of the report's code: the attention and classifier take ``2 * hidden_size`` features when
the GRU is bidirectional; attention ignores padded frames (from the featurizer's frame lengths);
GRU dropout is only applied between stacked layers (PyTorch warns otherwise)."""

from __future__ import annotations

import torch
from torch import nn

from esc50.core.config import TaskConfig
from esc50.core.hookspecs import hookimpl


class Attention(nn.Module):
    """Additive attention: energy = Linear-Tanh-Linear, softmax over valid frames, weighted sum."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.energy = nn.Sequential(nn.Linear(size, size), nn.Tanh(), nn.Linear(size, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        energy = self.energy(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(energy, dim=-1)
        return (x * alpha.unsqueeze(-1)).sum(dim=1)


class CRNN(nn.Module):
    """CRNN with attention (report's CRNN-A): Conv2d -> GRU -> attention -> linear."""

    name = "crnn"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 dropout: float = 0.1) -> None:
        super().__init__()
        channels, bins, _ = input_shape
        self.kernel_size, self.stride = tuple(config.kernel_size), tuple(config.stride)
        if bins < self.kernel_size[0]:
            raise ValueError(f"{bins} feature bins are fewer than kernel_size[0]="
                             f"{self.kernel_size[0]}")
        self.conv = nn.Conv2d(channels, config.cnn_out_channels, self.kernel_size, self.stride)
        conv_bins = (bins - self.kernel_size[0]) // self.stride[0] + 1
        self.gru = nn.GRU(input_size=config.cnn_out_channels * conv_bins,
                          hidden_size=config.hidden_size, num_layers=config.gru_num_layers,
                          dropout=dropout if config.gru_num_layers > 1 else 0.0,
                          bidirectional=config.bidirectional, batch_first=True)
        size = config.hidden_size * (2 if config.bidirectional else 1)
        self.attention = Attention(size)
        self.classifier = nn.Linear(size, config.num_classes)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """[B, C, F, T] features and [B] valid frames -> [B, num_classes] logits."""
        frames = features.shape[-1]
        if frames < self.kernel_size[1]:  # too short for one convolution step: pad the time axis
            features = nn.functional.pad(features, (0, self.kernel_size[1] - frames))
        conv = self.conv(features)  # [B, C', F', T']
        seq = conv.flatten(1, 2).transpose(1, 2)  # [B, T', C' * F']
        out, _ = self.gru(seq)
        steps = ((frame_lengths - self.kernel_size[1]) // self.stride[1] + 1).clamp(1, out.shape[1])
        mask = torch.arange(out.shape[1], device=out.device)[None, :] < steps[:, None]
        return self.classifier(self.attention(out, mask))


@hookimpl
def register_models(register):
    register(CRNN)
