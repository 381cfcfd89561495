"""``gaussian`` on the power spectrogram: white noise of standard deviation s adds band power
drawn around its expected value s^2 * window energy * filter weight (see spectral.noise_bands).
The cross term between clip and noise, zero on average, is left out."""

from __future__ import annotations

import torch

from esc50 import hookimpl, to_device
from esc50.plugins.augs.gaussian import GaussianNoise
from esc50.plugins.augs.spectral import PowerStage, noise_bands

ESC50_PLUGIN_API = 4


class SpecGaussianNoise(PowerStage, GaussianNoise):
    """White Gaussian noise added as band power (fast): std from [min_std, max_std]."""

    name = "spec_gaussian"

    def apply(self, power: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        batch, bins = power.shape[0], self.featurizer.frequencies.shape[0]
        std = params["std"] * chosen
        energy = float(self.featurizer.window.pow(2).sum())  # white noise's power per bin
        psd = to_device(std.pow(2) * energy, power)[:, None].expand(batch, bins)
        return power + noise_bands(psd, self.featurizer, power.shape[-1], generator).to(power)


@hookimpl
def register_augmentations(register):
    register(SpecGaussianNoise)
