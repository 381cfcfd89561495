"""The report's CRNN-A: a strided convolution, a GRU and additive attention over time.

Fixes of the report's code: the attention and classifier take ``2 * hidden_size`` features when
the GRU is bidirectional; attention ignores padded frames (from the featurizer's frame lengths);
GRU dropout is only applied between stacked layers (PyTorch warns otherwise); a bidirectional
GRU runs backwards from each clip's last valid step (packed sequences), so a clip scores the same
in any padded batch (packing reads the lengths on the host: one device wait per step, only when
bidirectional)."""

from __future__ import annotations

import torch
from torch import nn

from esc50 import TaskConfig, frame_mask, hookimpl
from esc50.plugins.models.layers import pad_time, zero_padding

ESC50_PLUGIN_API = 4


class Attention(nn.Module):
    """Additive attention: energy = Linear-Tanh-Linear, softmax over valid frames, weighted sum.

    The last Linear has no bias: a constant added to every frame's energy before a softmax over
    frames cannot change it (the softmax is shift-invariant), so that bias never learned (its
    gradient is zero up to rounding). Checkpoints written with it still load: it is dropped."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.energy = nn.Sequential(nn.Linear(size, size), nn.Tanh(),
                                    nn.Linear(size, 1, bias=False))
        self._register_load_state_dict_pre_hook(self._drop_dead_bias)

    @staticmethod
    def _drop_dead_bias(state_dict: dict, prefix: str, *_: object) -> None:
        state_dict.pop(f"{prefix}energy.2.bias", None)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        energy = self.energy(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(energy, dim=-1)
        return (x * alpha.unsqueeze(-1)).sum(dim=1)


class CRNN(nn.Module):
    """CRNN with attention (report's CRNN-A): Conv2d -> GRU -> attention -> linear."""

    name = "crnn"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 cnn_out_channels: int = 8, kernel_size: tuple[int, int] = (5, 20),
                 stride: tuple[int, int] = (2, 8), hidden_size: int = 64,
                 gru_num_layers: int = 2, bidirectional: bool = False,
                 dropout: float = 0.1) -> None:
        """Options:
        cnn_out_channels: channels of the convolution
        kernel_size: convolution kernel (bands, frames)
        stride: convolution stride (bands, frames)
        hidden_size: GRU hidden units per direction
        gru_num_layers: stacked GRU layers
        bidirectional: a GRU in both directions
        dropout: dropout between stacked GRU layers
        """
        super().__init__()
        channels, bins, _ = input_shape
        for name, value in (("kernel_size", kernel_size), ("stride", stride)):
            if len(value) != 2 or min(value) <= 0:
                raise ValueError(f"option {name}={list(value)} must be two positive integers")
        for name, value in (("cnn_out_channels", cnn_out_channels), ("hidden_size", hidden_size),
                            ("gru_num_layers", gru_num_layers)):
            if value <= 0:
                raise ValueError(f"option {name}={value} must be positive")
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        if bins < self.kernel_size[0]:
            raise ValueError(f"{bins} feature bins are fewer than kernel_size[0]="
                             f"{self.kernel_size[0]}")
        self.conv = nn.Conv2d(channels, cnn_out_channels, self.kernel_size, self.stride)
        conv_bins = (bins - self.kernel_size[0]) // self.stride[0] + 1
        self.gru = nn.GRU(input_size=cnn_out_channels * conv_bins, hidden_size=hidden_size,
                          num_layers=gru_num_layers,
                          dropout=dropout if gru_num_layers > 1 else 0.0,
                          bidirectional=bidirectional, batch_first=True)
        size = hidden_size * (2 if bidirectional else 1)
        self.attention = Attention(size)
        self.classifier = nn.Linear(size, config.num_classes)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """[B, C, F, T] features and [B] valid frames -> [B, num_classes] logits."""
        # at least one convolution step; padded frames zeroed, as past a clip scored alone
        features = pad_time(zero_padding(features, frame_lengths), self.kernel_size[1])
        conv = self.conv(features)  # [B, C', F', T']
        seq = conv.flatten(1, 2).transpose(1, 2)  # [B, T', C' * F']
        steps = ((frame_lengths - self.kernel_size[1]) // self.stride[1] + 1).clamp(1, seq.shape[1])
        if self.gru.bidirectional:  # the reverse direction starts at each clip's last valid step
            packed = nn.utils.rnn.pack_padded_sequence(seq, steps.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            out = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                                   total_length=seq.shape[1])[0]
        else:  # the forward direction never sees the padding before a valid step
            out, _ = self.gru(seq)
        return self.classifier(self.attention(out, frame_mask(out.shape[1], steps)))


@hookimpl
def register_models(register):
    register(CRNN)
