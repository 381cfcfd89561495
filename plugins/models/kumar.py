"""The CNN of Kumar, Khadkevich and Fügen, "Knowledge transfer from weakly labeled audio using
convolutional neural network for sound events and scenes" (ICASSP 2018; code:
github.com/anuragkr90/weak_feature_extractor, class ``weak_mxh64_1024``), the report's
"GitHub model".

Sources of each choice:
- Layers (repository): blocks B1-B5 of two 3x3 conv-BN-ReLU with 16, 32, 64, 128, 256 channels,
  each followed by 2x2 max pooling; B6 one 3x3 conv-BN-ReLU with 512 channels and 2x2 max
  pooling; F1 a 2x2 conv to 1024 channels with BN-ReLU; F2 a 1x1 conv to the classes.
- Segment outputs to a clip prediction (paper, section 2; ``globalpool`` in the repository):
  F2 gives one output per class and time segment; a global pooling over the whole map (max in
  ``weak_mxh64_1024``, the "mx") turns them into the clip's prediction. Padded segments are left
  out of the pooling, and zeroed before every convolution and pooling, so a clip scores the same
  in any padded batch.
- The repository ends F2 with a sigmoid for AudioSet's multi-label targets; ESC-50 is single-label
  and trained with cross-entropy, so this returns the pooled pre-sigmoid scores as logits (the
  sigmoid is monotonic, so max pooling picks the same segment either way).
- The paper uses 128 mel bands; the report uses 64. Pooling rounds up (``ceil_mode``) and F1's
  kernel shrinks to the frequency bins that are left, so any ``n_mels`` and clip length work; for
  128 bands it is exactly the published network.
- Transfer (paper, section 3): the published AudioSet weights (``mx-h64-1024_0d3-1.17.pkl`` in
  the repository, a state dict of ``weak_mxh64_1024``, keys possibly prefixed ``module.``) load
  with the ``checkpoint`` option: its ``layerN`` is ``blocks[N-1]`` here (N <= 17; pooling layers
  hold no weights), ``layer18`` is F1, and its AudioSet F2 (``layer19``, 527 classes) is replaced
  by a new F2. The paper's front end is ``plugins.kumar_logmel`` (44.1 kHz, 128 bands, dB); the
  network there is time-major and here frequency-major, so kernels are transposed on loading.
  The paper's own transfer recipe (F1's output averaged over time as a 1024-dimensional
  embedding, then a linear classifier) is ``plugins.kumar_embedding`` with ``plugins.linear``.
  Pooling rounds up where the published network rounds down, so a clip whose frame count is not
  a multiple of 64 keeps one more segment at its end; otherwise the outputs are the same.
"""

from __future__ import annotations

import torch
from torch import nn

from esc50 import TaskConfig, hookimpl
from esc50.plugins.models.layers import (conv_bn_relu, masked_layers, masked_max, masked_mean,
                                         pad_time)
from esc50.plugins.models.published import (Freezable, check_freeze, load_published,
                                             published_weights, read_state_dict,
                                             trainable_groups)

ESC50_PLUGIN_API = 4

BLOCKS = [(16, 2), (32, 2), (64, 2), (128, 2), (256, 2), (512, 1)]  # (channels, convolutions)
REDUCTION = 2 ** len(BLOCKS)
PUBLISHED_BANDS = 128
EXPECTED = ("mx-h64-1024_0d3-1.17.pkl from github.com/anuragkr90/weak_feature_extractor "
            "(Kumar et al. 2018); pass its path, or the name kumar-audioset to have it fetched, "
            "as plugins.kumar's checkpoint option")


def published_key(key: str) -> str | None:
    """The name here of a key of ``weak_mxh64_1024``'s state dict (None: its AudioSet F2)."""
    layer, _, rest = key.partition(".")
    number = int(layer.removeprefix("layer")) if layer.removeprefix("layer").isdigit() else 0
    if number == 19:
        return None
    if number == 18:
        return f"f1.{rest}"
    return f"blocks.{number - 1}.{rest}" if number else key


class Kumar(Freezable):
    """Kumar et al. 2018 CNN (B1-B6, F1, F2) with global pooling of segment outputs."""

    name = "kumar"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 pooling: str = "max", checkpoint: str = "", backbone_lr_scale: float = 1.0,
                 freeze_blocks: int = 0) -> None:
        """Options:
        pooling: how segment outputs are pooled over time (max or mean)
        checkpoint: the published mx-h64-1024_0d3-1.17.pkl to start from: its path, or kumar-audioset to fetch it ("": random weights)
        backbone_lr_scale: learning rate of the layers before F2, times the run's (0.1 to fine-tune)
        freeze_blocks: blocks B1.. (of 6) kept frozen, weights and batch-norm statistics
        """
        super().__init__()
        if pooling not in ("max", "mean"):
            raise ValueError(f"pooling={pooling!r} must be 'max' or 'mean'")
        if not 0 < backbone_lr_scale <= 1:
            raise ValueError(f"backbone_lr_scale={backbone_lr_scale} must be in (0, 1]")
        check_freeze(freeze_blocks, len(BLOCKS))
        self.pooling, self.backbone_lr_scale = pooling, backbone_lr_scale
        channels, bins, _ = input_shape
        if checkpoint and (channels, bins) != (1, PUBLISHED_BANDS):
            raise ValueError(f"the published weights take 1 x {PUBLISHED_BANDS} mel bands, not "
                             f"{channels} x {bins}: use --featurizer plugins.kumar_logmel")
        layers, first_blocks = [], []
        for width, convs in BLOCKS:
            for _ in range(convs):
                layers.append(conv_bn_relu(channels, width))
                channels = width
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            bins = -(-bins // 2)
            first_blocks.append(list(layers))
        self.blocks = nn.Sequential(*layers)
        self.f1 = conv_bn_relu(channels, 1024, kernel_size=(min(2, bins), 2), padding=0)
        self.f2 = nn.Conv2d(1024, config.num_classes, kernel_size=1)
        if checkpoint:
            load_published(self, read_state_dict(checkpoint, EXPECTED), published_key,
                           new=("f2.",), file=checkpoint)
        self.freeze(first_blocks[freeze_blocks - 1] if freeze_blocks else [])

    def parameter_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """F2 at the learning rate, the layers before it at ``backbone_lr_scale`` of it."""
        return trainable_groups(self.f2, [self.blocks, self.f1], self.backbone_lr_scale)

    def segments(self, features: torch.Tensor, frame_lengths: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """F1's output [B, 1024, F, S] and each clip's valid segments."""
        x, segments = masked_layers(self.blocks, pad_time(features, 2 * REDUCTION), frame_lengths)
        return self.f1(x), segments - 1  # F1's 2-wide kernel drops one segment

    def embed(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """The paper's embedding [B, 1024]: F1's output averaged over the clip's segments."""
        x, segments = self.segments(features, frame_lengths)
        return masked_mean(x.mean(dim=2), segments)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        x, segments = self.segments(features, frame_lengths)
        x = self.f2(x)  # [B, K, F, S]
        scores = x.amax(dim=2) if self.pooling == "max" else x.mean(dim=2)  # [B, K, S]
        pool = masked_max if self.pooling == "max" else masked_mean
        return pool(scores, segments)


@hookimpl
def register_models(register):
    register(Kumar)


@hookimpl
def register_weights(register):
    register(**published_weights("kumar-audioset"))
