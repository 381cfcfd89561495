"""``noise`` on the power spectrogram: band power of a background recording (a random window of
its frames) or of generated coloured noise, scaled to the SNR drawn per clip (the ratio of the
clip's total band power to the noise's) and added. The clip-noise cross term, zero on average,
is left out, and nothing is clamped."""

from __future__ import annotations

import torch

from esc50.core.contracts import Featurizer, uniform
from esc50.core.hookspecs import hookimpl
from esc50.plugins.augs.noise import BackgroundNoise, colour_gain, noise_windows
from esc50.plugins.augs.spectral import EPS, noise_bands, require_power


class SpecBackgroundNoise(BackgroundNoise):
    """Background noise added as band power at an SNR from [min_snr_db, max_snr_db] (fast)."""

    name = "spec_noise"
    stage = "power"

    def attach(self, featurizer: Featurizer) -> None:
        self.featurizer = require_power(self.name, featurizer)
        device = featurizer.frequencies.device
        with torch.no_grad():  # each recording's band power, once
            self.noise_powers = [featurizer.power(noise[None].to(device))[0]
                                 for noise in self.noises]

    def forward(self, power: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, frames = power.shape[0], power.shape[-1]
        chosen = self.chosen(batch, generator)
        noise = self._draw_noise_power(batch, frames, generator).to(power)
        snr_db = uniform(self.min_snr_db, self.max_snr_db, batch, generator).to(power.device)
        ratio = power.sum(dim=(1, 2, 3)) / noise.sum(dim=(1, 2, 3)).clamp(min=EPS)
        scale = ratio * torch.pow(10.0, -snr_db / 10) * chosen.to(power.device)
        return power + noise * scale[:, None, None, None]

    def _draw_noise_power(self, batch: int, frames: int, generator: torch.Generator
                          ) -> torch.Tensor:
        if not self.noise_powers:
            decay = uniform(self.min_f_decay, self.max_f_decay, batch, generator)
            psd = colour_gain(self.featurizer.frequencies, decay).pow(2)
            return noise_bands(psd, self.featurizer, frames, generator)
        return noise_windows(self.noise_powers, batch, frames, generator)


@hookimpl
def register_augmentations(register):
    register(SpecBackgroundNoise)
