"""``volume`` on the power spectrogram: the gain in dB scales the power by 10^(dB/10), exactly as
scaling the waveform would (no clipping at full scale, where the waveform version clamps)."""

from __future__ import annotations

import torch

from esc50.core.contracts import Featurizer, uniform
from esc50.core.hookspecs import hookimpl
from esc50.plugins.augs.spectral import require_power
from esc50.plugins.augs.volume import Volume


class SpecVolume(Volume):
    """Volume change on the power spectrogram (fast, exact): gain from [min_gain_db, max_gain_db]."""

    name = "spec_volume"
    stage = "power"

    def attach(self, featurizer: Featurizer) -> None:
        require_power(self.name, featurizer)

    def forward(self, power: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = self.chosen(power.shape[0], generator)
        gain_db = uniform(self.min_gain_db, self.max_gain_db, power.shape[0], generator) * chosen
        return power * torch.pow(10.0, gain_db / 10).to(power.device)[:, None, None, None]


@hookimpl
def register_augmentations(register):
    register(SpecVolume)
