"""``time_stretch`` on the power spectrogram: output frame t reads the power at input frame
t * rate, interpolated between the two nearest frames, as the phase vocoder interpolates
magnitudes; frames past the clip's end are silent, so the clip keeps its padded length, and its
valid frames become L / rate."""

from __future__ import annotations

import torch

from esc50 import hookimpl, to_device
from esc50.plugins.augs.spectral import PowerStage
from esc50.plugins.augs.time_stretch import TimeStretch
from esc50.plugins.augs.vocoder import read_at

ESC50_PLUGIN_API = 4


class SpecTimeStretch(PowerStage, TimeStretch):
    """Time stretch of the power spectrogram (fast): rate from [min_rate, max_rate]."""

    name = "spec_time_stretch"

    def apply(self, power: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        rates = params["rate"][chosen]
        return self.on_chosen(power, chosen, lambda x: stretch_frames(x, to_device(rates, x)))


def stretch_frames(power: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """[B, C, F, T] power read at frame positions t * rates[b], linearly interpolated; silent
    past the clip's end."""
    frames = power.shape[-1]
    positions = torch.arange(frames, device=power.device)[None, :] * rates[:, None]  # [B, T]
    return read_at(power, positions) * (positions <= frames - 1)[:, None, None, :]


@hookimpl
def register_augmentations(register):
    register(SpecTimeStretch)
