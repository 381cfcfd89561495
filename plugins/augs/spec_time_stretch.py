"""``time_stretch`` on the power spectrogram: output frame t reads the power at input frame
t * rate, interpolated between the two nearest frames, as the phase vocoder interpolates
magnitudes; frames past the clip's end are silent, so the clip keeps its padded length, and its
valid frames become L / rate."""

from __future__ import annotations

import torch

from esc50.core.config import TaskConfig
from esc50.core.contracts import Augmentation, Featurizer, to_device
from esc50.core.hookspecs import hookimpl
from esc50.plugins.augs.spectral import require_power
from esc50.plugins.augs.time_stretch import RateRange
from esc50.plugins.augs.vocoder import read_at


class SpecTimeStretch(Augmentation):
    """Time stretch of the power spectrogram (fast): rate from [min_rate, max_rate]."""

    name = "spec_time_stretch"
    stage = "power"

    def __init__(self, config: TaskConfig, min_rate: float = RateRange.min_rate,
                 max_rate: float = RateRange.max_rate, p: float = 0.5) -> None:
        super().__init__(p)
        self.range = RateRange(min_rate, max_rate)

    def attach(self, featurizer: Featurizer) -> None:
        require_power(self.name, featurizer)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.range.sample(batch_size, generator)

    def apply(self, power: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        rates = params["rate"][chosen]
        return self.on_chosen(power, chosen, lambda x: stretch_frames(x, to_device(rates, x)))

    def valid_lengths(self, frames: torch.Tensor, size: int) -> torch.Tensor:
        return self.range.stretched_lengths(frames, self.last_params, size)


def stretch_frames(power: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """[B, C, F, T] power read at frame positions t * rates[b], linearly interpolated; silent
    past the clip's end."""
    frames = power.shape[-1]
    positions = torch.arange(frames, device=power.device)[None, :] * rates[:, None]  # [B, T]
    return read_at(power, positions) * (positions <= frames - 1)[:, None, None, :]


@hookimpl
def register_augmentations(register):
    register(SpecTimeStretch)
