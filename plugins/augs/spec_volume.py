"""``volume`` on the power spectrogram: the gain in dB scales the power by 10^(dB/10), exactly as
scaling the waveform would (no clipping at full scale, where the waveform version clamps)."""

from __future__ import annotations

import torch

from esc50.core.config import TaskConfig
from esc50.core.contracts import Augmentation, Featurizer, to_device
from esc50.core.hookspecs import hookimpl
from esc50.plugins.augs.spectral import require_power
from esc50.plugins.augs.volume import GainRange


class SpecVolume(Augmentation):
    """Volume change on the power spectrogram (fast, exact): gain from [min_gain_db, max_gain_db]."""

    name = "spec_volume"
    stage = "power"

    def __init__(self, config: TaskConfig, min_gain_db: float = GainRange.min_gain_db,
                 max_gain_db: float = GainRange.max_gain_db, p: float = 0.5) -> None:
        super().__init__(p)
        self.range = GainRange(min_gain_db, max_gain_db)

    def attach(self, featurizer: Featurizer) -> None:
        require_power(self.name, featurizer)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.range.sample(batch_size, generator)

    def apply(self, power: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        gain = to_device(torch.pow(10.0, params["gain_db"] * chosen / 10), power)
        return power * gain[:, None, None, None]


@hookimpl
def register_augmentations(register):
    register(SpecVolume)
