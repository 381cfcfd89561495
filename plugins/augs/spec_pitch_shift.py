"""``pitch_shift`` on the power spectrogram: shifting by s semitones multiplies every frequency by
r = 2^(s/12), so the band centred on f takes the power found at f / r, interpolated between the
two bands around it (nothing comes from above the top band; below the lowest band it repeats).
Band widths are not rescaled: an approximation, close on the log-spaced upper bands."""

from __future__ import annotations

import torch

from esc50 import Featurizer, hookimpl, to_device
from esc50.plugins.augs.pitch_shift import PitchShift
from esc50.plugins.augs.spectral import EPS, PowerStage, band_centres

ESC50_PLUGIN_API = 4


class SpecPitchShift(PowerStage, PitchShift):
    """Pitch shift of the power spectrogram (fast): semitones from [min_semitones, max_semitones]."""

    name = "spec_pitch_shift"

    def attach(self, featurizer: Featurizer) -> None:
        super().attach(featurizer)
        self.centres = band_centres(self.featurizer)

    def apply(self, power: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        ratios = to_device(torch.pow(2.0, params["semitones"][chosen] / 12), power)
        return self.on_chosen(power, chosen,
                              lambda x: shift_bands(x, self.centres.to(x.device), ratios))


def shift_bands(power: torch.Tensor, centres: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
    """[B, C, F, T] power with band f reading the power at frequency centres[f] / ratios[b]."""
    bands = centres.shape[0]
    wanted = centres[None, :] / ratios[:, None]  # [B, F] Hz to read from
    right = torch.searchsorted(centres, wanted.contiguous()).clamp(max=bands - 1)
    left = (right - 1).clamp(min=0)
    gap = (centres[right] - centres[left]).clamp(min=EPS)
    frac = ((wanted - centres[left]) / gap).clamp(0.0, 1.0)[:, None, :, None]
    shape = (-1, power.shape[1], -1, power.shape[3])
    pick = lambda index: power.gather(2, index[:, None, :, None].expand(shape))  # noqa: E731
    inside = (wanted <= centres[-1])[:, None, :, None]
    return torch.lerp(pick(left), pick(right), frac) * inside


@hookimpl
def register_augmentations(register):
    register(SpecPitchShift)
