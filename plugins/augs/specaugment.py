"""SpecAugment's frequency and time masking (Park et al., 2019), per example, on features
``[B, C, F, T]``; masked cells take the example's mean value."""

from __future__ import annotations

import torch

from esc50 import Augmentation, Esc50Error, check_min_max, hookimpl, to_device

ESC50_PLUGIN_API = 4


def band_masks(widths: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size] booleans: the union of one band per column of ``widths`` and ``starts`` [B, n]
    (a width in steps, clipped to ``size``, and a start as a fraction of the room left)."""
    widths = widths.clamp(max=size)
    first = (starts * (size - widths + 1)).long()
    positions = torch.arange(size, device=widths.device)[None, None, :]
    inside = (positions >= first[..., None]) & (positions < (first + widths)[..., None])
    return inside.any(dim=1)


class SpecAugment(Augmentation):
    """Mask frequency bands and time spans of the features (SpecAugment)."""

    name = "specaugment"
    stage = "features"

    def __init__(self, freq_masks: int = 2, min_freq_width: int = 0,
                 max_freq_width: int = 8, time_masks: int = 2, min_time_width: int = 0,
                 max_time_width: int = 40, p: float = 0.5) -> None:
        """Options:
        freq_masks: frequency bands masked per example
        time_masks: time spans masked per example
        """
        super().__init__(p)
        if freq_masks < 0 or time_masks < 0 or min(min_freq_width, min_time_width) < 0:
            raise Esc50Error("option freq_masks, time_masks and the widths must not be negative")
        check_min_max("freq_width", min_freq_width, max_freq_width)
        check_min_max("time_width", min_time_width, max_time_width)
        self.freq = (freq_masks, min_freq_width, max_freq_width)
        self.time = (time_masks, min_time_width, max_time_width)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per example and mask: a width (steps) and a start (a fraction of the room left)."""
        draws = {}
        for axis, (count, low, high) in (("freq", self.freq), ("time", self.time)):
            draws[f"{axis}_width"] = torch.randint(low, high + 1, (batch_size, count),
                                                   generator=generator, device=generator.device)
            draws[f"{axis}_start"] = torch.rand(batch_size, count, generator=generator,
                                                device=generator.device)
        return draws

    def apply(self, features: torch.Tensor, chosen: torch.Tensor,
              params: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        _, _, bins, frames = features.shape
        freq = band_masks(params["freq_width"], params["freq_start"], bins)
        time = band_masks(params["time_width"], params["time_start"], frames)
        mask = to_device(freq, features)[:, None, :, None] | \
            to_device(time, features)[:, None, None, :]
        mask &= to_device(chosen, features)[:, None, None, None]
        mean = features.mean(dim=(1, 2, 3), keepdim=True)
        return torch.where(mask, mean, features)


@hookimpl
def register_augmentations(register):
    register(SpecAugment)
