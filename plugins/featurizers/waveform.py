"""The raw waveform as features, for end-to-end models: ``[B, 1, 1, T]``, one frame per sample."""

from __future__ import annotations

import torch

from esc50 import Featurizer, hookimpl

ESC50_PLUGIN_API = 4


class Waveform(Featurizer):
    """Raw audio samples as a [1, 1, samples] feature map (for end-to-end models)."""

    name = "waveform"

    def __init__(self) -> None:
        super().__init__()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return wav[:, None, None, :]

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        return (1, 1, num_samples)


@hookimpl
def register_featurizers(register):
    register(Waveform)
