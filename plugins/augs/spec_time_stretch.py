"""``time_stretch`` on the power spectrogram: output frame t reads the power at input frame
t * rate, interpolated between the two nearest frames, as the phase vocoder interpolates
magnitudes; frames past the clip's end are silent, so the clip keeps its length."""

from __future__ import annotations

import torch

from esc50.core.contracts import Featurizer, uniform
from esc50.core.hookspecs import hookimpl
from esc50.plugins.augs.spectral import require_power
from esc50.plugins.augs.time_stretch import TimeStretch
from esc50.plugins.augs.vocoder import read_at


class SpecTimeStretch(TimeStretch):
    """Time stretch of the power spectrogram (fast): rate from [min_rate, max_rate]."""

    name = "spec_time_stretch"
    stage = "power"

    def attach(self, featurizer: Featurizer) -> None:
        require_power(self.name, featurizer)

    def forward(self, power: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = self.chosen(power.shape[0], generator)
        rates = uniform(self.min_rate, self.max_rate, power.shape[0], generator)[chosen]
        return self.on_chosen(power, chosen.to(power.device),
                              lambda x: stretch_frames(x, rates.to(x.device)))


def stretch_frames(power: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """[B, C, F, T] power read at frame positions t * rates[b], linearly interpolated; silent
    past the clip's end."""
    frames = power.shape[-1]
    positions = torch.arange(frames, device=power.device)[None, :] * rates[:, None]  # [B, T]
    return read_at(power, positions) * (positions <= frames - 1)[:, None, None, :]


@hookimpl
def register_augmentations(register):
    register(SpecTimeStretch)
