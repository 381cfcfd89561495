"""``volume`` on the power spectrogram: the gain in dB scales the power by 10^(dB/10), exactly as
scaling the waveform would (no clipping at full scale, where the waveform version clamps)."""

from __future__ import annotations

import torch

from esc50 import hookimpl, to_device
from esc50.plugins.augs.spectral import PowerStage
from esc50.plugins.augs.volume import Volume

ESC50_PLUGIN_API = 4


class SpecVolume(PowerStage, Volume):
    """Volume change on the power spectrogram (fast, exact): gain from [min_gain_db, max_gain_db]."""

    name = "spec_volume"

    def apply(self, power: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        gain = to_device(torch.pow(10.0, params["gain_db"] * chosen / 10), power)
        return power * gain[:, None, None, None]


@hookimpl
def register_augmentations(register):
    register(SpecVolume)
