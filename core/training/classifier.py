"""A trained classifier: featurizer, optional normalizer and model, built from a config and
the plugin registry, or loaded from a checkpoint with everything it needs to predict."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from esc50.core.config import TaskConfig, load_config
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.contracts import Featurizer
from esc50.core.plugin_api.choices import RunPlugins
from esc50.core.plugin_api.registry import Registry
from esc50.core.results.checkpoint import load_checkpoint
from esc50.core.results.folder import checkpoint_path
from esc50.core.training.normalize import FeatureNormalizer
from esc50.core.training.stages import Stages


class Classifier(nn.Module):
    """Waveforms [B, T] in [-1, 1] and lengths in samples -> logits [B, classes], through the
    run's stages (:mod:`esc50.core.training.stages`) without augmentation. ``feature_shape``
    (the featurizer's (C, F, frames) for a training clip) and ``num_classes`` are what the model
    was built for; the stages check the featurizer's and the model's outputs against them."""

    def __init__(self, featurizer: Featurizer, model: nn.Module,
                 normalizer: FeatureNormalizer | None = None, channels_last: bool = False,
                 feature_shape: tuple[int, int, int] | None = None,
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.featurizer, self.model, self.normalizer = featurizer, model, normalizer
        self.channels_last = channels_last
        self.feature_shape, self.num_classes = feature_shape, num_classes
        if channels_last:  # convolutions run faster in this layout (1.3-1.7x on this CPU)
            model.to(memory_format=torch.channels_last)

    def model_input(self, features: torch.Tensor) -> torch.Tensor:
        """Features in the memory layout the model was built for."""
        if self.channels_last and features.dim() == 4:
            return features.contiguous(memory_format=torch.channels_last)
        return features

    @torch.no_grad()
    def features(self, wav: torch.Tensor, lengths: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized features and frame lengths (no gradients: nothing here is trained)."""
        return Stages(self)(wav, lengths)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        features, frames = self.features(wav, lengths)
        return self.model(self.model_input(features), frames)


def build_classifier(config: TaskConfig, registry: Registry, restoring: bool = False,
                     plugins: RunPlugins | None = None) -> Classifier:
    """An untrained, unnormalized classifier for ``config``: its model and featurizer from a
    run's ``plugins`` (chosen once by :meth:`RunPlugins.of`), else chosen here (nothing else:
    a trained run loads wherever its model and featurizer are installed, its augmentations and
    loggers are needed only to train). ``restoring=True`` builds it to receive a checkpoint's
    weights: one-time set-up (``pretrained`` weights) is skipped."""
    if plugins is not None:
        model_choice, featurizer_choice = plugins.model, plugins.featurizer
    else:
        model_choice = registry.choose("model", config.model, config)
        featurizer_choice = registry.choose("featurizer", config.featurizer, config)
    featurizer = featurizer_choice.build(config)
    shape = featurizer.output_shape(config.length_wav)
    model = model_choice.build(config, shape, restoring=restoring)
    return Classifier(featurizer, model, channels_last=config.channels_last, feature_shape=shape,
                      num_classes=config.num_classes)


def load_classifier(path: Path, registry: Registry, which: str = "last",
                    warn: Callable[[str], None] = print) -> tuple[Classifier, dict]:
    """The classifier saved in an esc50 checkpoint, or in a run directory's ``last.pt`` (the
    reported final epoch; ``which="best"``: ``best.pt``, chosen on validation), in eval mode, on
    the CPU, and the checkpoint's contents (config, class names, plugins, history, split)."""
    path = checkpoint_path(path, which)
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise Esc50Error(f"{path} is not an esc50 checkpoint (no model and config in it)")
    registry.check_recorded(state.get("plugins", {}), warn, kinds=("model", "featurizer"))
    config = TaskConfig().override(**state["config"])
    written = path.parent / "config.toml"
    if written.is_file():
        saved, used = load_config(written).flat(), config.flat()
        edited = sorted(k for k in saved.keys() | used.keys() if saved.get(k) != used.get(k))
        if edited:
            warn(f"note: {written} differs from the checkpoint's config ({', '.join(edited)}); "
                 "the checkpoint's is used: the weights were trained with it")
    names = state.get("class_names")
    if not isinstance(names, list) or len(names) != config.num_classes:
        raise Esc50Error(f"checkpoint {path} lists {len(names) if isinstance(names, list) else 'no'}"
                         f" class names for num_classes={config.num_classes}: it is damaged or was "
                         "not written by esc50")
    classifier = build_classifier(config, registry, restoring=True)
    weights = state["model"]
    if state.get("ema"):  # last.pt of a run with weight averaging: predict with the average
        weights = {k.removeprefix("module."): v for k, v in state["ema"].items()
                   if k.startswith("module.")}
    try:
        classifier.model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = " ".join(" ".join(str(exc).strip().splitlines()[:3]).split())[:300]
        raise Esc50Error(f"checkpoint {path}: its weights do not fit the model its config "
                         f"builds ({config.model}): {first}") from None
    if state.get("normalizer") is not None:
        classifier.normalizer = FeatureNormalizer(**state["normalizer"])
    return classifier.eval(), state
