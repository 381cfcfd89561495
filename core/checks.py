"""Plugin contracts checked at run time: before a run creates its folder, one small batch of its
training clips goes through every augmentation, the featurizer and the model
(:func:`setup_pass`), and each output is checked against what the contract promises. A plugin that breaks it gets one
line naming its id, its package, what it returned and what was expected, instead of a traceback
from the component after it. ``esc50.testing`` runs the same checks in a plugin's own tests."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from esc50.core.audio import to_float
from esc50.core.contracts import Augmentation, PowerFeaturizer
from esc50.core.errors import Esc50Error


def who(info: dict[str, str]) -> str:
    """How a message names a plugin: ``model plugins.crnn (esc50 0.1.0)``."""
    return f"{info['kind']} {info['id']} ({info['package']} {info['version']})".replace(" )", ")")


def describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {list(x.shape)}"
    return f"{type(x).__name__}"


def run(name: str, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, with an exception raised inside a plugin turned into one line naming it."""
    try:
        return call(*args)
    except Esc50Error:
        raise
    except Exception as exc:
        shapes = ", ".join(describe(a) for a in args if isinstance(a, torch.Tensor))
        raise Esc50Error(f"{name} failed on {shapes}: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:300]}") from exc


def check_features(features: Any, batch: int, shape: tuple[int, int, int], name: str) -> None:
    """A featurizer's output: [B, C, F, frames] with its declared C and F, finite."""
    expected = f"[{batch}, {shape[0]}, {shape[1]}, frames] (output_shape gives C and F)"
    if not isinstance(features, torch.Tensor) or features.dim() != 4 or \
            tuple(features.shape[:3]) != (batch, shape[0], shape[1]):
        raise Esc50Error(f"{name} returned {describe(features)}; expected {expected}")
    _check_finite(features, name)


def check_frames(frames: Any, batch: int, name: str, method: str = "frame_lengths") -> None:
    """``frame_lengths`` (or an augmentation's ``valid_lengths``): [B] whole numbers, at
    least 1."""
    if not isinstance(frames, torch.Tensor) or tuple(frames.shape) != (batch,) or \
            frames.is_floating_point() or bool((frames < 1).any()):
        raise Esc50Error(f"{name} {method} returned {describe(frames)}; expected [{batch}] "
                         "whole numbers of at least 1 (valid samples or frames per clip)")


def check_transformed(before: torch.Tensor, after: Any, name: str) -> None:
    """An augmentation keeps the batch's shape and dtype and gives finite values."""
    if not isinstance(after, torch.Tensor) or after.shape != before.shape or \
            after.dtype != before.dtype:
        raise Esc50Error(f"{name} returned {describe(after)} for {describe(before)}; an "
                         "augmentation must keep the batch size, shape and dtype")
    _check_finite(after, name)


def check_mixed(features: torch.Tensor, targets: torch.Tensor, out: Any, name: str) -> None:
    """A batch augmentation returns (features, targets) of the shapes it was given."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise Esc50Error(f"{name} returned {describe(out)}; expected (features, targets)")
    check_transformed(features, out[0], name)
    check_transformed(targets, out[1], f"{name} (targets)")


def check_logits(logits: Any, batch: int, num_classes: int, name: str) -> None:
    """A model returns [B, num_classes] finite logits."""
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (batch, num_classes):
        raise Esc50Error(f"{name} returned {describe(logits)}; expected logits of shape "
                         f"[{batch}, {num_classes}] (batch, num_classes)")
    _check_finite(logits, name)


def _check_finite(x: torch.Tensor, name: str) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise Esc50Error(f"{name} returned {bad} NaN or infinite value(s) in "
                         f"{describe(x)}")


@torch.no_grad()
def setup_pass(classifier: Any, augs: dict[str, Augmentation], names: dict[str, str],
               config: Any, batch: dict[str, torch.Tensor], device: torch.device) -> None:
    """``batch`` (collated training clips) through the augmentations (``augs`` by spec), the
    featurizer and the model of ``classifier``, every output checked; ``names`` says how a
    message names each spec's plugin. Its draws come from a generator of its own, and torch's
    global random state is put back, so a run is the same with or without it."""
    global_state = torch.get_rng_state()
    generator = torch.Generator(device=device).manual_seed(config.seed)

    def through(stage: str, x: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        for spec, aug in augs.items():
            if aug.stage == stage:
                out = run(names[spec], aug, x, generator)
                check_transformed(x, out, names[spec])
                x, lengths = out, run(names[spec], aug.valid_lengths, lengths, x.shape[-1])
                check_frames(lengths, x.shape[0], names[spec], "valid_lengths")
        return x, lengths

    wav, lengths = to_float(batch["wav"]).to(device), batch["length"].to(device)
    size = wav.shape[0]
    wav, lengths = through("wave", wav, lengths)
    featurizer, fname = classifier.featurizer, names[config.featurizer]
    frames = run(fname, featurizer.frame_lengths, lengths)
    check_frames(frames, size, fname)
    if isinstance(featurizer, PowerFeaturizer):
        power, frames = through("power", run(fname, featurizer.power, wav), frames)
        features = run(fname, featurizer.compress, power)
    else:
        features = run(fname, featurizer, wav)
    check_features(features, size, featurizer.output_shape(config.length_wav), fname)
    if classifier.normalizer is not None:
        features = classifier.normalizer(features)
    features, frames = through("features", features, frames)
    targets = nn.functional.one_hot(batch["label"], config.num_classes).float().to(device)
    for spec, aug in augs.items():
        if aug.stage == "batch":
            out = run(names[spec], aug, features, targets, generator)
            check_mixed(features, targets, out, names[spec])
            features, targets = out
    model = classifier.model
    model.eval()
    logits = run(names[config.model], model, classifier.model_input(features), frames)
    model.train()
    check_logits(logits, size, config.num_classes, names[config.model])
    torch.set_rng_state(global_state)
