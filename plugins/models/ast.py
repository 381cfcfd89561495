"""The Audio Spectrogram Transformer (Gong, Chung and Glass, Interspeech 2021) through Hugging
Face ``transformers`` (``ASTModel``), from a checkpoint saved with ``save_pretrained`` or a hub
id, with a new classification head.

Sources of each choice:
- The network and its weights: ``transformers``' ``ASTModel`` (the encoder of
  ``ASTForAudioClassification``; a directory saved from either loads). Loading is strict: a
  weight of the encoder missing from the checkpoint, or an unexpected one, is an error; the
  AudioSet classifier of an ``ASTForAudioClassification`` checkpoint is set aside.
- The clip embedding: the mean of the class and distillation tokens after the final layer norm
  (``pooler_output``), as ``ASTForAudioClassification`` uses it; the new head is its
  ``ASTMLPHead`` (layer norm, linear) with the run's classes.
- Fine-tuning (AST section 3 on ESC-50): all layers; the encoder at ``backbone_lr_scale`` of the
  learning rate, the new head at the full rate; ``freeze_blocks`` keeps the patch embedding and
  the first transformer layers as loaded.
- The input: ``plugins.ast_fbank`` (time-major ``[B, frames, bands]`` inside, as ``ASTModel``
  takes it), exactly ``max_length`` frames of ``num_mel_bins`` bands from the checkpoint's
  config. Every clip is padded to those frames the same way alone or in a batch, so a clip's
  output does not depend on its batch.
- ``transformers`` is an optional dependency: ``pip install 'esc50[pretrained]'``.
- The checkpoint is read again when a trained run is loaded (its architecture comes from it), so
  keep the directory where it was; the run's own weights then replace the checkpoint's.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from esc50 import Esc50Error, TaskConfig, hookimpl
from esc50.plugins.models.published import Freezable, check_freeze, trainable_groups

ESC50_PLUGIN_API = 4


def transformers_module() -> Any:
    """The ``transformers`` package, or a one-line error naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        raise Esc50Error("plugins.ast needs the transformers package: pip install "
                         "'esc50[pretrained]'") from None
    return transformers


def offline() -> bool:
    """esc50's offline switch (``ESC50_OFFLINE=1``, ``--offline``) or the hub's own
    (``HF_HUB_OFFLINE=1``): a hub id is then read from transformers' cache only."""
    return any(os.environ.get(name, "") not in ("", "0")
               for name in ("ESC50_OFFLINE", "HF_HUB_OFFLINE"))


def unloadable(source: str, exc: Exception) -> Esc50Error:
    reason = " ".join(str(exc).split())[:300]
    where = (" (offline: a hub id must be in transformers' cache; save it once with "
             "save_pretrained and pass the folder)" if offline() else "")
    return Esc50Error(f"AST checkpoint {source!r} cannot be loaded{where}: {reason}")


def checkpoint_config(source: str) -> Any:
    """The ``ASTConfig`` of a checkpoint (its architecture and input size)."""
    try:
        return transformers_module().ASTConfig.from_pretrained(source,
                                                               local_files_only=offline())
    except (OSError, ValueError) as exc:
        raise unloadable(source, exc) from None


def load_encoder(source: str, input_shape: tuple[int, int, int]) -> nn.Module:
    """``ASTModel`` from ``source`` (a save_pretrained directory or a hub id), strictly, or with
    random weights for ``input_shape`` when ``source`` is empty."""
    transformers = transformers_module()
    _, bands, frames = input_shape
    if not source:
        return transformers.ASTModel(transformers.ASTConfig(num_mel_bins=bands,
                                                            max_length=frames))
    try:
        encoder, info = transformers.ASTModel.from_pretrained(
            source, output_loading_info=True, local_files_only=offline())
    except (OSError, ValueError) as exc:
        raise unloadable(source, exc) from None
    missing = sorted(info.get("missing_keys") or [])  # lists or sets, by version
    unexpected = sorted(k for k in info.get("unexpected_keys") or []
                        if not k.startswith("classifier."))  # the AudioSet head, set aside
    misshapen = sorted(map(str, info.get("mismatched_keys") or []))
    if missing or unexpected or misshapen:
        raise Esc50Error(f"AST checkpoint {source} does not fit ASTModel: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}, other shapes {misshapen[:4]}")
    config = encoder.config
    if (config.num_mel_bins, config.max_length) != (bands, frames):
        raise Esc50Error(f"AST checkpoint {source} takes {config.max_length} frames of "
                         f"{config.num_mel_bins} bands, the featurizer gives {frames} of {bands}: "
                         f"--featurizer plugins.ast_fbank:max_length={config.max_length},"
                         f"n_mels={config.num_mel_bins}")
    return encoder


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer layers of an ``ASTModel`` (``layers`` in transformers 5, ``encoder.layer``
    before)."""
    return encoder.layers if hasattr(encoder, "layers") else encoder.encoder.layer


class AST(Freezable):
    """Audio Spectrogram Transformer (Hugging Face ASTModel) with a new classification head."""

    name = "ast"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int], source: str = "",
                 backbone_lr_scale: float = 0.1, freeze_blocks: int = 0) -> None:
        """Options:
        source: a directory saved with save_pretrained, or a hub id when online ("": random)
        backbone_lr_scale: learning rate of the encoder, times the run's
        freeze_blocks: transformer layers (with the patch embedding) kept frozen
        """
        super().__init__()
        if not 0 < backbone_lr_scale <= 1:
            raise ValueError(f"backbone_lr_scale={backbone_lr_scale} must be in (0, 1]")
        self.backbone_lr_scale = backbone_lr_scale
        self.encoder = load_encoder(source, input_shape)
        size = self.encoder.config.hidden_size
        self.head = nn.Sequential(nn.LayerNorm(size, eps=self.encoder.config.layer_norm_eps),
                                  nn.Linear(size, config.num_classes))
        layers = encoder_layers(self.encoder)
        check_freeze(freeze_blocks, len(layers))
        self.freeze([self.encoder.embeddings, *layers[:freeze_blocks]] if freeze_blocks else [])

    def parameter_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """The new head at the learning rate, the encoder at ``backbone_lr_scale`` of it."""
        return trainable_groups(self.head, [self.encoder], self.backbone_lr_scale)

    def embed(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """[B, 1, bands, frames] -> the pooled class and distillation tokens [B, hidden]."""
        return self.encoder(input_values=features[:, 0].transpose(1, 2)).pooler_output

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(features, frame_lengths))


@hookimpl
def register_models(register):
    register(AST)
