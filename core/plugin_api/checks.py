"""Plugin contracts checked at run time, so that a plugin that breaks one is named in one line
(its id, package and version, the stage, what went in and what came out, and where in the run)
instead of a traceback from the component after it.

Two levels (see :class:`esc50.core.training.stages.Stages`, which calls these at every step):
- always: an exception raised inside a plugin's call, and the shape and dtype of what it returns
  (both known on the host: checking them never waits for a GPU);
- ``finite=True``: also that every value is finite (a device sync), in the set-up pass before a
  run makes its folder, in ``esc50.testing``, and when a run re-checks the batch on which its
  loss stopped being finite, to name the first stage whose output went non-finite.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from esc50.core.errors import Esc50Error


def plugin_label(info: dict[str, str]) -> str:
    """How a message names a plugin: ``model plugins.crnn (esc50 0.3.0)``."""
    return f"{info['kind']} {info['id']} ({info['package']} {info['version']})".replace(" )", ")")


def describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {list(x.shape)}"
    if isinstance(x, tuple):
        return "(" + ", ".join(describe(v) for v in x) + ")"
    return f"{type(x).__name__}"


def call(name: str, stage: str, where: str, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, with an exception raised inside a plugin turned into one line naming
    the plugin, the stage, the inputs and ``where`` (the step or the set-up pass)."""
    try:
        return function(*args)
    except Esc50Error:
        raise
    except Exception as exc:
        shapes = ", ".join(describe(a) for a in args if isinstance(a, torch.Tensor))
        raise Esc50Error(f"{name} failed in the {stage} stage{where} on {shapes}: "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
                         "(--traceback shows where)") from exc


def check_features(features: Any, batch: int, shape: tuple[int, int, int], name: str,
                   finite: bool = False) -> None:
    """A featurizer's output: [B, C, F, frames] with its declared C and F (finite)."""
    expected = f"[{batch}, {shape[0]}, {shape[1]}, frames] (output_shape gives C and F)"
    if not isinstance(features, torch.Tensor) or features.dim() != 4 or \
            tuple(features.shape[:3]) != (batch, shape[0], shape[1]) or \
            not features.is_floating_point():
        raise Esc50Error(f"{name} returned {describe(features)}; expected {expected}, "
                         "floating point")
    if finite:
        check_finite(features, name)


def check_frames(frames: Any, batch: int, name: str, method: str = "frame_lengths") -> None:
    """``frame_lengths`` (or an augmentation's ``valid_lengths``): [B] whole numbers (at least 1
    when checked in full: that needs the values)."""
    if not isinstance(frames, torch.Tensor) or tuple(frames.shape) != (batch,) or \
            frames.is_floating_point():
        raise Esc50Error(f"{name} {method} returned {describe(frames)}; expected [{batch}] "
                         "whole numbers of at least 1 (valid samples or frames per clip)")


def check_time_axis(out: torch.Tensor, frames: torch.Tensor, samples: torch.Tensor,
                    total: int, declared: int, name: str) -> None:
    """A featurizer's time axis: for a batch padded to ``total`` samples its output (features,
    or a power spectrogram) has the ``declared`` frames ``output_shape(total)`` gives, and its
    ``frame_lengths`` give no clip more frames than that (fewer: frames of padding, as a
    featurizer that pads every clip to a fixed length has)."""
    if out.shape[-1] != declared:
        raise Esc50Error(f"{name} gave {out.shape[-1]} frames for {total} samples, but its "
                         f"output_shape({total}) declares {declared}: the time axis a model "
                         "and the frame lengths rely on")
    if bool((frames > declared).any()):
        raise Esc50Error(f"{name} frame_lengths gave {frames.tolist()[:8]} for clips of "
                         f"{samples.tolist()[:8]} samples; its features have {declared} frames "
                         f"for {total} samples, so no clip has more")


def check_frames_positive(frames: torch.Tensor, name: str, method: str = "frame_lengths"
                          ) -> None:
    if bool((frames < 1).any()):
        raise Esc50Error(f"{name} {method} returned {frames.tolist()[:8]}; expected whole "
                         "numbers of at least 1 (valid samples or frames per clip)")


def check_transformed(before: torch.Tensor, after: Any, name: str, finite: bool = False) -> None:
    """An augmentation keeps the batch's shape and dtype (and gives finite values)."""
    if not isinstance(after, torch.Tensor) or after.shape != before.shape or \
            after.dtype != before.dtype:
        raise Esc50Error(f"{name} returned {describe(after)} for {describe(before)}; an "
                         "augmentation must keep the batch size, shape and dtype")
    if finite:
        check_finite(after, name)


def check_mixed(features: torch.Tensor, targets: torch.Tensor, out: Any, name: str,
                finite: bool = False) -> None:
    """A batch augmentation returns (features, targets) of the shapes it was given."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise Esc50Error(f"{name} returned {describe(out)}; expected (features, targets)")
    check_transformed(features, out[0], name, finite)
    check_transformed(targets, out[1], f"{name} (targets)", finite)


def check_logits(logits: Any, batch: int, num_classes: int, name: str,
                 finite: bool = False) -> None:
    """A model returns [B, num_classes] floating-point (finite) logits."""
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (batch, num_classes) or \
            not logits.is_floating_point():
        raise Esc50Error(f"{name} returned {describe(logits)}; expected logits of shape "
                         f"[{batch}, {num_classes}] (batch, num_classes), floating point")
    if finite:
        check_finite(logits, name)


def check_finite(x: torch.Tensor, name: str) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise Esc50Error(f"{name} returned {bad} NaN or infinite value(s) in "
                         f"{describe(x)}")
