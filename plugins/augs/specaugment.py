"""SpecAugment's frequency and time masking (Park et al., 2019), per example, on features
``[B, C, F, T]``; masked cells take the example's mean value."""

from __future__ import annotations

import torch

from esc50.core.config import TaskConfig
from esc50.core.contracts import Augmentation, check_min_max, to_device
from esc50.core.errors import Esc50Error
from esc50.core.hookspecs import hookimpl


def band_masks(count: int, size: int, low: int, high: int, batch: int,
               generator: torch.Generator) -> torch.Tensor:
    """[B, size] booleans: the union of ``count`` bands per example, each of a width drawn from
    [low, high] (clipped to ``size``) at a uniformly drawn start."""
    device = generator.device
    mask = torch.zeros(batch, size, dtype=torch.bool, device=device)
    positions = torch.arange(size, device=device)[None, :]
    for _ in range(count):
        width = torch.randint(low, high + 1, (batch,), generator=generator, device=device)
        width = width.clamp(max=size)
        start = (torch.rand(batch, generator=generator, device=device) * (size - width + 1)).long()
        mask |= (positions >= start[:, None]) & (positions < (start + width)[:, None])
    return mask


class SpecAugment(Augmentation):
    """Mask frequency bands and time spans of the features (SpecAugment)."""

    name = "specaugment"
    stage = "features"

    def __init__(self, config: TaskConfig, freq_masks: int = 2, min_freq_width: int = 0,
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

    def apply(self, features: torch.Tensor, chosen: torch.Tensor,
              params: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        batch, _, bins, frames = features.shape
        freq = band_masks(*self.freq[:1], bins, *self.freq[1:], batch, generator)
        time = band_masks(*self.time[:1], frames, *self.time[1:], batch, generator)
        mask = (freq.to(features.device)[:, None, :, None] | time.to(features.device)[:, None, None, :])
        mask &= to_device(chosen, features)[:, None, None, None]
        mean = features.mean(dim=(1, 2, 3), keepdim=True)
        return torch.where(mask, mean, features)


@hookimpl
def register_augmentations(register):
    register(SpecAugment)
