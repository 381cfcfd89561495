"""Additive Gaussian noise (the report's N(0, 0.01) per sample, clamped to [-1, 1])."""

from __future__ import annotations

import torch

from esc50 import Augmentation, check_min_max, hookimpl, to_device, uniform

ESC50_PLUGIN_API = 4


class GaussianNoise(Augmentation):
    """Add white Gaussian noise with a standard deviation drawn from [min_std, max_std]."""

    name = "gaussian"
    stage = "wave"

    def __init__(self, min_std: float = 0.01, max_std: float = 0.01,
                 p: float = 0.5) -> None:
        super().__init__(p)
        check_min_max("std", min_std, max_std, (0.0, 1.0))
        self.min_std, self.max_std = min_std, max_std

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"std": uniform(self.min_std, self.max_std, batch_size, generator)}

    def apply(self, wav: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        std = to_device(params["std"] * chosen, wav)
        noise = torch.randn(wav.shape, generator=generator, device=generator.device)
        # Work in place on the one new tensor: allocating big tensors costs more than the math.
        return noise.to(wav.device).mul_(std[:, None]).add_(wav).clamp_(-1.0, 1.0)


@hookimpl
def register_augmentations(register):
    register(GaussianNoise)
