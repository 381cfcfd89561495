"""``noise`` on the power spectrogram: band power of a background recording (a random window of
its frames) or of generated coloured noise, scaled to the SNR drawn per clip (the ratio of the
clip's total band power to the noise's) and added. The clip-noise cross term, zero on average,
is left out, and nothing is clamped."""

from __future__ import annotations

import torch

from esc50 import Featurizer, hookimpl, to_device
from esc50.plugins.augs.noise import BackgroundNoise, colour_gain, noise_windows
from esc50.plugins.augs.spectral import EPS, PowerStage, noise_bands

ESC50_PLUGIN_API = 4


class SpecBackgroundNoise(PowerStage, BackgroundNoise):
    """Background noise added as band power at an SNR from [min_snr_db, max_snr_db] (fast)."""

    name = "spec_noise"

    def attach(self, featurizer: Featurizer) -> None:
        super().attach(featurizer)
        device = featurizer.frequencies.device
        with torch.no_grad():  # each recording's band power, once
            self.noise_powers = [featurizer.power(noise[None].to(device))[0]
                                 for noise in self.noises]

    def apply(self, power: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        frames = power.shape[-1]
        if self.noise_powers:
            noise = noise_windows(self.noise_powers, params, frames)
        else:
            psd = colour_gain(self.featurizer.frequencies, params["f_decay"]).pow(2)
            noise = noise_bands(psd, self.featurizer, frames, generator)
        noise = noise.to(power)
        snr_db = to_device(params["snr_db"], power)
        ratio = power.sum(dim=(1, 2, 3)) / noise.sum(dim=(1, 2, 3)).clamp(min=EPS)
        scale = ratio * torch.pow(10.0, -snr_db / 10) * to_device(chosen, power)
        return power + noise * scale[:, None, None, None]


@hookimpl
def register_augmentations(register):
    register(SpecBackgroundNoise)
