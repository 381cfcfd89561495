"""Transfer learning with torchvision's VGG19 (the report's section 3.5): the first convolution
takes the featurizer's channels (one for a spectrogram), the last layer gives the classes.

``pretrained=true`` (``--pretrained``) loads ImageNet weights through torchvision's weights API;
the first layer's colour filters are summed into one channel. Without network access the
weights must already be in torch's hub cache: the error names the file and where to get it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from esc50 import Esc50Error, TaskConfig, hookimpl
from esc50.plugins.models.layers import masked_layers, pad_time, per_clip

ESC50_PLUGIN_API = 4

MIN_FRAMES = 32  # five 2x2 poolings


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet VGG19 weights from torchvision (its cache, else a download)."""
    from torchvision.models import VGG19_Weights

    weights = VGG19_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=False)
    except Exception as exc:
        raise Esc50Error(f"ImageNet weights for vgg19 not found at {cached} and not downloadable "
                         f"({type(exc).__name__}); download {weights.url} on a machine with "
                         f"network and place it at {cached} (or set TORCH_HOME)") from None


class VGG19(nn.Module):
    """torchvision VGG19 with a one-channel input layer and a num_classes output layer."""

    name = "vgg19"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 pretrained: bool = False) -> None:
        """``pretrained``: start from torchvision's ImageNet weights (fresh runs only)

        A model rebuilt for a checkpoint gets its weights from the checkpoint instead."""
        super().__init__()
        channels = input_shape[0]
        from torchvision.models import vgg19  # imported here: 2 s that other commands skip

        self.net = vgg19(weights=None)
        first = self.net.features[0]
        if pretrained:
            self.net.load_state_dict(imagenet_state_dict())
        summed = first.weight.detach().sum(dim=1, keepdim=True)  # colour filters -> one channel
        self.net.features[0] = nn.Conv2d(channels, first.out_channels, 3, padding=1)
        with torch.no_grad():
            self.net.features[0].weight.copy_(summed.expand(-1, channels, -1, -1) / channels)
            self.net.features[0].bias.copy_(first.bias)
        self.net.classifier[6] = nn.Linear(self.net.classifier[6].in_features, config.num_classes)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        x, lengths = masked_layers(self.net.features, pad_time(features, MIN_FRAMES),
                                   frame_lengths)
        x = per_clip(self.net.avgpool, x, lengths)  # each clip pooled over its valid frames
        return self.net.classifier(torch.flatten(x, 1))


@hookimpl
def register_models(register):
    register(VGG19)
