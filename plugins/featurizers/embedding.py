"""Linear probing: a frozen pre-trained network as a featurizer. Its front end and backbone turn a
clip into one embedding ``[1, size, 1]``; with no waveform augmentation the trainer computes the
embeddings once and caches them (shared by the folds of ``esc50 cv``), so only a small head
(``plugins.linear``) trains: minutes on a CPU.

Sources of each choice:
- Kumar et al. 2018 (section 3): F1's output averaged over time, 1024 values, then a linear
  classifier: ``kumar_embedding`` (``plugins.kumar``'s ``embed``).
- Kong et al. 2020 (PANNs, section V-D, "freeze the CNN14 and use it as a feature extractor"):
  the 2048-dimensional output of ``fc1``: ``cnn14_embedding``.
- AST (Gong et al. 2021): the mean of its class and distillation tokens, ``ast_embedding``.
- The backbone stays in evaluation mode (batch-norm statistics and dropout off), as a feature
  extractor does; each clip is embedded as the trainer pads or crops it (``length_wav``).

The base of the three; each registers from its own module (``cnn14_embedding.py``,
``kumar_embedding.py``, ``ast_embedding.py``), so an entry point's name is the id it registers.
"""

from __future__ import annotations

import torch
from torch import nn

from esc50 import Featurizer, TaskConfig


class Embedding(Featurizer):
    """``backbone.embed(front_end(wav))`` as features ``[B, 1, size, 1]``, frozen."""

    def __init__(self, front_end: Featurizer, backbone: nn.Module, size: int) -> None:
        super().__init__()
        self.front_end, self.size = front_end, size
        self.backbone = backbone.eval().requires_grad_(False)
        self.min_samples = front_end.min_samples

    def train(self, mode: bool = True) -> Embedding:
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        features = self.front_end(wav)
        frames = torch.full((wav.shape[0],), features.shape[-1], device=wav.device)
        return self.backbone.embed(features, frames)[:, None, :, None]

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(lengths)

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        return (1, self.size, 1)


def required(option: str, where: str) -> str:
    """``where`` the published weights are, refused when empty: random weights give no useful
    embedding."""
    if not where:
        raise ValueError(f"the {option} option is required (where the published weights are)")
    return where


def published(model: type[nn.Module], config: TaskConfig, front_end: Featurizer,
              **weights: str) -> nn.Module:
    """``model`` for ``front_end``'s features, from the published weights ``weights`` names."""
    return model(config, front_end.output_shape(config.length_wav), **weights)


class PublishedEmbedding(Embedding):
    """The embedding of a built-in network loaded from its published file, with the front end
    it was trained with (``front_end_type``, ``backbone_type`` and ``embedding_size`` per
    subclass)."""

    front_end_type: type[Featurizer]
    backbone_type: type[nn.Module]
    embedding_size: int

    def __init__(self, config: TaskConfig, checkpoint: str = "") -> None:
        """Options:
        checkpoint: the published weights: a path, or a name `esc50 weights list` shows (required; see docs/pretrained.md)
        """
        front_end = self.front_end_type(config)
        super().__init__(front_end, published(self.backbone_type, config, front_end,
                                              checkpoint=required("checkpoint", checkpoint)),
                         self.embedding_size)
