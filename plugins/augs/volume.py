"""Volume change (the report's ``torchaudio.transforms.Vol(0.25)``: an amplitude gain of 0.25,
-12.04 dB), with the gain in dB drawn from a range, clamped to [-1, 1]."""

from __future__ import annotations

import torch

from esc50 import Augmentation, check_min_max, hookimpl, to_device, uniform

ESC50_PLUGIN_API = 4


class Volume(Augmentation):
    """Scale clips by a gain in dB drawn from [min_gain_db, max_gain_db]."""

    name = "volume"
    stage = "wave"

    def __init__(self, min_gain_db: float = -12.04,
                 max_gain_db: float = -12.04, p: float = 0.5) -> None:
        super().__init__(p)
        check_min_max("gain_db", min_gain_db, max_gain_db, (-60.0, 40.0))
        self.min_gain_db, self.max_gain_db = min_gain_db, max_gain_db

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"gain_db": uniform(self.min_gain_db, self.max_gain_db, batch_size, generator)}

    def apply(self, wav: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        gain = to_device(torch.pow(10.0, params["gain_db"] * chosen / 20), wav)
        return (wav * gain[:, None]).clamp_(-1.0, 1.0)  # one new tensor: big ones are costly


@hookimpl
def register_augmentations(register):
    register(Volume)
