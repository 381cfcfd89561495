"""Time stretch without pitch change (the report's ``librosa.effects.time_stretch``, rate 2.0),
batched with a phase vocoder; each clip keeps its padded length (padded with silence or cropped)
and its valid length becomes L / rate, so the model reads the stretched clip and no padding."""

from __future__ import annotations

import torch

from esc50 import Augmentation, check_min_max, hookimpl, to_device, uniform
from esc50.plugins.augs.vocoder import stretch

ESC50_PLUGIN_API = 4


class TimeStretch(Augmentation):
    """Speed clips up or slow them down by a rate drawn from [min_rate, max_rate], same pitch."""

    name = "time_stretch"
    stage = "wave"

    def __init__(self, min_rate: float = 0.8, max_rate: float = 1.25,
                 p: float = 0.5) -> None:
        super().__init__(p)
        check_min_max("rate", min_rate, max_rate, (0.25, 4.0))
        self.min_rate, self.max_rate = min_rate, max_rate

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"rate": uniform(self.min_rate, self.max_rate, batch_size, generator)}

    def valid_lengths(self, lengths: torch.Tensor, size: int) -> torch.Tensor:
        """A clip of L steps (samples or frames) sped up by ``rate`` lasts L / rate (up to the
        padded ``size``); examples not chosen keep theirs."""
        chosen = to_device(self.last_params["chosen"], lengths)
        rate = to_device(self.last_params["rate"], lengths)
        stretched = torch.ceil(lengths / rate).to(lengths.dtype).clamp(1, size)
        return torch.where(chosen, stretched, lengths)

    def apply(self, wav: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        rates = params["rate"][chosen]
        return self.on_chosen(wav, chosen, lambda x: stretch(x, rates, x.shape[1]).clamp(-1, 1))


@hookimpl
def register_augmentations(register):
    register(TimeStretch)
