"""A linear classifier (or a one-hidden-layer MLP) on features averaged over time: the head of a
linear probe on pre-trained embeddings (``plugins.cnn14_embedding``,
``plugins.kumar_embedding``), and a floor for any other featurizer.

Sources of each choice: Kumar et al. 2018 (section 3) train a linear classifier on the averaged
embedding; Kong et al. 2020 (PANNs, section V-D) one linear layer on the frozen CNN14's
embedding. The hidden layer (ReLU, dropout) is the common "small MLP" variant.
"""

from __future__ import annotations

import torch
from torch import nn

from esc50 import TaskConfig, hookimpl
from esc50.plugins.models.layers import masked_mean

ESC50_PLUGIN_API = 4


class Linear(nn.Module):
    """Mean over the valid frames, flattened, then a linear layer (or hidden -> ReLU -> out)."""

    name = "linear"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int], hidden: int = 0,
                 dropout: float = 0.0) -> None:
        """Options:
        hidden: units of a hidden ReLU layer (0: a linear classifier)
        dropout: dropout before each linear layer
        """
        super().__init__()
        if hidden < 0 or not 0 <= dropout < 1:
            raise ValueError(f"need hidden={hidden} >= 0 and dropout={dropout} in [0, 1)")
        size = input_shape[0] * input_shape[1]
        layers: list[nn.Module] = []
        if hidden:
            layers += [nn.Dropout(dropout), nn.Linear(size, hidden), nn.ReLU()]
            size = hidden
        self.net = nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(size, config.num_classes))

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        return self.net(masked_mean(features, frame_lengths).flatten(1))


@hookimpl
def register_models(register):
    register(Linear)
