"""The exponential moving average of a model's weights (``ema_decay``), which validation scores
and the run reports when it is on."""

from __future__ import annotations

import copy

import torch
from torch import nn


class MovingAverage(nn.Module):
    """The exponential moving average of a model's weights and buffers (``ema_decay``). Its first
    update copies the model; after n updates the decay is min(decay, (1 + n) / (10 + n)), so the
    early weights do not linger in the average of a short run. Its state dict is laid out as
    torch's ``AveragedModel``'s (``module.*``, ``n_averaged``), so checkpoints of either load.

    The update count stays on the host and the floating-point tensors are updated by one fused
    ``torch._foreach_lerp_``: an update never waits for the GPU (``AveragedModel`` with a custom
    average read its count back from the device for every tensor, every step)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long))

    def rate(self) -> float:
        """The weight the average keeps at the next update."""
        n = int(self.n_averaged)  # on the host
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        averaged = [*self.module.parameters(), *self.module.buffers()]
        current = [*model.parameters(), *model.buffers()]
        if int(self.n_averaged) == 0:
            for mine, theirs in zip(averaged, current):
                mine.copy_(theirs)
        else:
            rate = self.rate()
            floats = [i for i, t in enumerate(averaged) if t.is_floating_point()]
            torch._foreach_lerp_([averaged[i] for i in floats], [current[i] for i in floats],
                                 1.0 - rate)
            for mine, theirs in zip(averaged, current):
                if not mine.is_floating_point():  # counters (batch norm's), as AveragedModel
                    mine.copy_(mine * rate + theirs * (1.0 - rate))
        self.n_averaged += 1
