"""The report's LSTM: one LSTM layer over feature frames, the output at the last valid frame of
each clip (from the featurizer's frame lengths, the report's ``gather`` at length - 1), then a
linear layer. Frames after a clip's end never reach its prediction."""

from __future__ import annotations

import torch
from torch import nn

from esc50 import TaskConfig, hookimpl

ESC50_PLUGIN_API = 4


class LSTMClassifier(nn.Module):
    """Report's LSTM: LSTM over frames, output at each clip's last valid frame, linear layer."""

    name = "lstm"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 hidden_size: int = 64) -> None:
        """Options:
        hidden_size: LSTM hidden units
        """
        super().__init__()
        channels, bins, _ = input_shape
        if hidden_size <= 0:
            raise ValueError(f"option hidden_size={hidden_size} must be positive")
        self.rnn = nn.LSTM(channels * bins, hidden_size, batch_first=True)
        self.classifier = nn.Linear(hidden_size, config.num_classes)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        seq = features.flatten(1, 2).transpose(1, 2)  # [B, T, C * F]
        out, _ = self.rnn(seq)
        last = (frame_lengths.clamp(1, out.shape[1]) - 1).to(out.device)
        index = last.view(-1, 1, 1).expand(-1, 1, out.shape[2])
        return self.classifier(out.gather(1, index).squeeze(1))


@hookimpl
def register_models(register):
    register(LSTMClassifier)
