"""Random time shift of the features (a random crop of a circularly extended clip): each example
is rolled along time by a fraction of its length drawn from [min_shift, max_shift]; with
``rollover=false`` the frames shifted in take the example's lowest value (silence) instead."""

from __future__ import annotations

import torch

from esc50 import Augmentation, check_min_max, hookimpl, to_device, uniform

ESC50_PLUGIN_API = 4


class TimeShift(Augmentation):
    """Shift features in time by a fraction of the clip from [min_shift, max_shift]."""

    name = "time_shift"
    stage = "features"

    def __init__(self, min_shift: float = -0.5, max_shift: float = 0.5,
                 rollover: bool = True, p: float = 0.5) -> None:
        """Options:
        rollover: frames shifted out come back at the other end (else silence)
        """
        super().__init__(p)
        check_min_max("shift", min_shift, max_shift, (-1.0, 1.0))
        self.min_shift, self.max_shift, self.rollover = min_shift, max_shift, rollover

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"shift": uniform(self.min_shift, self.max_shift, batch_size, generator)}

    def apply(self, features: torch.Tensor, chosen: torch.Tensor,
              params: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        frames = features.shape[-1]
        fraction = params["shift"] * chosen
        shift = to_device((fraction * frames).round().long(), features)  # frames, + = later
        source = torch.arange(frames, device=features.device)[None, :] - shift[:, None]
        index = source.remainder(frames)[:, None, None, :].expand_as(features)
        shifted = features.gather(3, index)
        if self.rollover:
            return shifted
        outside = ((source < 0) | (source >= frames))[:, None, None, :]
        floor = features.amin(dim=(1, 2, 3), keepdim=True)
        return torch.where(outside, floor, shifted)


@hookimpl
def register_augmentations(register):
    register(TimeShift)
