"""Time stretch without pitch change (the report's ``librosa.effects.time_stretch``, rate 2.0),
batched with a phase vocoder; each clip keeps its length (padded with silence or cropped)."""

from __future__ import annotations

import torch

from esc50.core.config import TaskConfig
from esc50.core.contracts import Augmentation, check_min_max, uniform
from esc50.core.hookspecs import hookimpl
from esc50.plugins.augs.vocoder import stretch


class TimeStretch(Augmentation):
    """Speed clips up or slow them down by a rate drawn from [min_rate, max_rate], same pitch."""

    name = "time_stretch"
    stage = "wave"

    def __init__(self, config: TaskConfig, min_rate: float = 0.8, max_rate: float = 1.25,
                 p: float = 0.5) -> None:
        super().__init__(p)
        check_min_max("rate", min_rate, max_rate, (0.25, 4.0))
        self.min_rate, self.max_rate = min_rate, max_rate

    def forward(self, wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = self.chosen(wav.shape[0], generator)
        rates = uniform(self.min_rate, self.max_rate, wav.shape[0], generator)[chosen]
        return self.on_chosen(wav, chosen, lambda x: stretch(x, rates, x.shape[1]).clamp(-1, 1))


@hookimpl
def register_augmentations(register):
    register(TimeStretch)
