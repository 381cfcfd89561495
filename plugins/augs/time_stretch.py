"""Time stretch without pitch change (the report's ``librosa.effects.time_stretch``, rate 2.0),
batched with a phase vocoder; each clip keeps its padded length (padded with silence or cropped)
and its valid length becomes L / rate, so the model reads the stretched clip and no padding."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esc50.core.config import TaskConfig
from esc50.core.contracts import Augmentation, check_min_max, uniform, to_device
from esc50.core.hookspecs import hookimpl
from esc50.plugins.augs.vocoder import stretch


@dataclass
class RateRange:
    """The speed-up rate, drawn per example from [min_rate, max_rate] (shared with
    ``spec_time_stretch``)."""

    min_rate: float = 0.8
    max_rate: float = 1.25

    def __post_init__(self) -> None:
        check_min_max("rate", self.min_rate, self.max_rate, (0.25, 4.0))

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"rate": uniform(self.min_rate, self.max_rate, batch_size, generator)}

    @staticmethod
    def stretched_lengths(lengths: torch.Tensor, params: dict[str, torch.Tensor],
                          size: int) -> torch.Tensor:
        """Valid lengths after stretching: a clip of L steps sped up by ``rate`` lasts L / rate
        (up to the padded ``size``); examples not chosen keep theirs."""
        chosen = to_device(params["chosen"], lengths)
        rate = to_device(params["rate"], lengths)
        stretched = torch.ceil(lengths / rate).to(lengths.dtype).clamp(1, size)
        return torch.where(chosen, stretched, lengths)


class TimeStretch(Augmentation):
    """Speed clips up or slow them down by a rate drawn from [min_rate, max_rate], same pitch."""

    name = "time_stretch"
    stage = "wave"

    def __init__(self, config: TaskConfig, min_rate: float = RateRange.min_rate,
                 max_rate: float = RateRange.max_rate, p: float = 0.5) -> None:
        super().__init__(p)
        self.range = RateRange(min_rate, max_rate)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.range.sample(batch_size, generator)

    def apply(self, wav: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        rates = params["rate"][chosen]
        return self.on_chosen(wav, chosen, lambda x: stretch(x, rates, x.shape[1]).clamp(-1, 1))

    def valid_lengths(self, lengths: torch.Tensor, size: int) -> torch.Tensor:
        return self.range.stretched_lengths(lengths, self.last_params, size)


@hookimpl
def register_augmentations(register):
    register(TimeStretch)
