"""Mixup (Zhang et al., 2018): each example is mixed with another of the batch, features and
labels alike, with a weight drawn from Beta(alpha, alpha). Mixing clips of different classes is
what between-class learning (Tokozume et al., 2018) credits for its ESC-50 gains."""

from __future__ import annotations

import torch

from esc50 import BatchAugmentation, Esc50Error, hookimpl, to_device

ESC50_PLUGIN_API = 4


class Mixup(BatchAugmentation):
    """Mix pairs of examples and their labels with weights from Beta(alpha, alpha)."""

    name = "mixup"

    def __init__(self, alpha: float = 0.4, p: float = 0.5) -> None:
        """Options:
        alpha: Beta(alpha, alpha) of the mixing weights (small: mostly one clip)
        """
        super().__init__(p)
        if alpha <= 0:
            raise Esc50Error(f"option alpha={alpha} must be positive")
        self.alpha = alpha
        self.beta = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Each example's partner in the batch and its own weight."""
        partner = torch.randperm(batch_size, generator=generator, device=generator.device)
        # torch's Beta sampler takes no generator: it draws from torch's global RNG, which the
        # trainer seeds with the run's seed.
        return {"partner": partner, "weight": self.beta.sample((batch_size,)).to(generator.device)}

    def apply(self, features: torch.Tensor, targets: torch.Tensor, chosen: torch.Tensor,
              params: dict[str, torch.Tensor], generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``targets`` [B, classes] are label probabilities; returns mixed features and targets."""
        batch = features.shape[0]
        lam = params["weight"]
        lam = to_device(torch.where(chosen, lam, torch.ones_like(lam)), features)
        partner = to_device(params["partner"], features)
        shape = (batch,) + (1,) * (features.dim() - 1)
        mixed = lam.view(shape) * features + (1 - lam.view(shape)) * features[partner]
        mixed_targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[partner]
        return mixed, mixed_targets


@hookimpl
def register_augmentations(register):
    register(Mixup)
