"""The one way a trained classifier scores clips. A run's validation after every epoch, its final
evaluation, ``esc50 evaluate``, ``report``, ``cv`` and the Python API (``Run.accuracy``,
``Model.evaluate``) all go through it, so they give one accuracy for one run, to the clip.

Two scorings of the same clips are equal when they see the same decoded audio (the int16 clips,
padded to the run's clip length), the same batches (:attr:`Scoring.batch` clips at a time, in
the split's order), the same featurizing of each batch and the same numerics in the model (bf16
autocast where the run trained with it). A run records its :class:`Scoring` in its checkpoints,
and every later scoring reads it from there. Outside training, a machine with less memory than
the run's scores in smaller batches where the recorded one would not fit (:func:`planned`),
and says so: the probabilities then differ from the run's in float rounding only.

Sources of each choice:
- bf16 for scoring where the run trained in it: validating in bf16 and evaluating in float32
  gave 0.3725 against 0.3825 for one 400-clip fold (4 clips differed), so the numerics are part
  of what is recorded, not a property of the command.
- A predicted class is the argmax of the probabilities (softmax of float32 logits), in every
  scoring alike: two logits that differ by less than float32 resolves after the softmax could
  otherwise give two answers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch

from esc50.core.config import TaskConfig
from esc50.core.data.audio import to_float
from esc50.core.data.audiocache import decoded_bytes
from esc50.core.errors import Esc50Error
from esc50.core.training.classifier import Classifier
from esc50.core.training import device
from esc50.core.training.device import autocast
from esc50.core.training.memory import measure, plan_batch

SCORE_BATCH = 64  # clips scored at a time (fewer when a training step's micro-batch is smaller)


@dataclass(frozen=True)
class Scoring:
    """How a run scores clips: ``batch`` clips at a time, the model under bf16 autocast when
    ``bf16``."""

    batch: int = SCORE_BATCH
    bf16: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "bf16": self.bf16}

    @classmethod
    def recorded(cls, state: dict[str, Any], warn: Callable[[str], None] = print) -> Scoring:
        """The scoring a checkpoint records (checkpoints written before it was recorded: 64
        clips at a time in float32), for scoring here, on the CPU: bf16 where this CPU has
        bf16 instructions, else float32 with a note that figures can differ by a few clips."""
        values = state.get("scoring") or {}
        batch, bf16 = values.get("batch", SCORE_BATCH), values.get("bf16", False)
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1 \
                or not isinstance(bf16, bool):
            raise Esc50Error(f"the checkpoint's scoring record {values!r} is damaged (expected "
                             "a batch of at least 1 clip and bf16 true or false)")
        if bf16 and not device.cpu_has_bf16():
            warn("note: this run was trained and scored in bf16; this CPU has no bf16 "
                 "instructions, so it scores in float32, which can differ from the run's own "
                 "figure by a few clips")
            bf16 = False
        return cls(batch, bf16)

    def starts(self, clips: int) -> range:
        """Where each batch of ``clips`` clips starts."""
        return range(0, clips, self.batch)


def logits(classifier: Classifier, features: torch.Tensor, frames: torch.Tensor,
           scoring: Scoring, call: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """float32 logits of finished features, the model under the run's numerics; ``call`` makes
    the model call (a named, checked one in a run), else the classifier's model directly."""
    with autocast(features.device, scoring.bf16):
        out = (call or classifier.model)(classifier.model_input(features), frames)
    return out.float()


def probabilities_of(logits_: torch.Tensor) -> torch.Tensor:
    """Class probabilities of float32 logits."""
    return torch.softmax(logits_, dim=1)


def predicted(logits_: torch.Tensor) -> torch.Tensor:
    """The predicted class of each row: the argmax of its probabilities."""
    return probabilities_of(logits_).argmax(dim=1)


@torch.no_grad()
def probabilities(classifier: Classifier, waves: torch.Tensor, lengths: torch.Tensor,
                  scoring: Scoring) -> np.ndarray:
    """Class probabilities [clips, classes] of decoded clips (int16 ``waves`` [clips, samples],
    valid ``lengths``), scored in ``scoring``'s batches."""
    classifier.eval()
    out = []
    for start in scoring.starts(waves.shape[0]):
        stop = start + scoring.batch
        features, frames = classifier.features(to_float(waves[start:stop]), lengths[start:stop])
        out.append(probabilities_of(logits(classifier, features, frames, scoring)))
    return torch.cat(out).cpu().numpy()


@dataclass(frozen=True)
class Member:
    """One trained classifier and how it scores: a model, or one model of an ensemble."""

    classifier: Classifier
    scoring: Scoring


def planned(member: Member, clips: int, config: TaskConfig,
            warn: Callable[[str], None]) -> Member:
    """``member`` scoring as many of ``clips`` clips, decoded as ``config`` says, at a time as
    fit in memory beside their decoded audio (not decoded yet), at most its run's own batch: a
    note when fewer, one line when not even one clip fits. Planned on what scoring one silent
    clip allocates."""
    length = config.length_wav
    clip_bytes = measure(lambda: probabilities(
        member.classifier, torch.zeros(1, length, dtype=torch.int16), torch.tensor([length]),
        member.scoring), torch.device("cpu"))
    most = min(member.scoring.batch, clips)
    batch, note = plan_batch(most, clip_bytes, "clip", decoded_bytes(clips, config),
                             f"the {clips} decoded clips")
    if note is None:
        return member
    warn(f"{note} (the run scored {member.scoring.batch} at a time: its probabilities can "
         "differ from these in float rounding)")
    return replace(member, scoring=replace(member.scoring, batch=batch))


@torch.no_grad()
def mean_probabilities(members: list[Member], wav: torch.Tensor, lengths: torch.Tensor
                       ) -> torch.Tensor:
    """Class probabilities [B, classes] of float waveforms [B, T] with valid ``lengths``: one
    classifier's, or the mean of an ensemble's (each member featurizes and scores the batch as
    its run does)."""
    total = None
    for member in members:
        classifier = member.classifier
        features, frames = classifier.features(wav, lengths)
        scores = probabilities_of(logits(classifier, features, frames, member.scoring))
        total = scores if total is None else total + scores
    return total / len(members)


def pools_steps(model: torch.nn.Module) -> bool:
    """Whether ``model`` computes embeddings of steps along time and pools them (its
    ``step_embeddings`` and ``pool_steps`` methods, docs/plugins.md), so the windows of a
    recording can share one pass over it."""
    return all(callable(getattr(model, name, None))
               for name in ("step_embeddings", "pool_steps"))


def check_steps_shape(name: str, steps: torch.Tensor, lengths: torch.Tensor,
                      clips: int) -> None:
    """What ``step_embeddings`` gave for ``clips`` clips, as a one-line error naming the model
    (``name``) unless it is [clips, dimensions, steps] with [clips] lengths."""
    if steps.dim() != 3 or steps.shape[0] != clips or tuple(lengths.shape) != (clips,):
        raise Esc50Error(f"{name}: step_embeddings() gave {tuple(steps.shape)} and lengths "
                         f"{tuple(lengths.shape)} for {clips} clip(s); expected [{clips}, "
                         f"dimensions, steps] and [{clips}] (docs/plugins.md)")


def shared_steps_logits(classifier: Classifier, span: torch.Tensor, starts: list[int],
                        length: int, scoring: Scoring) -> torch.Tensor:
    """float32 logits [windows, classes] of the windows of ``span`` (mono [T]) that start at
    ``starts`` samples, ``length`` samples each, from one pass of a model that pools steps: its
    steps over the whole span, then each window's share of them (as many steps as a window has,
    from the step nearest its start). A step near a window's edge has seen audio on both sides
    of it, so a window's probabilities can differ from the window scored alone."""
    features, frames = classifier.features(span[None], torch.tensor([span.shape[0]]))
    model = classifier.model
    with autocast(features.device, scoring.bf16):
        steps, step_lengths = model.step_embeddings(classifier.model_input(features), frames)
        check_steps_shape(f"model {type(model).__name__}", steps, step_lengths, 1)
        total = min(int(step_lengths[0]), steps.shape[-1])
        width = min(max(round(length * total / span.shape[0]), 1), total)
        offsets = [min(round(start * total / span.shape[0]), total - width) for start in starts]
        windows = torch.cat([steps[:, :, o:o + width] for o in offsets])
        out = model.pool_steps(windows, torch.full((len(starts),), width))
    return out.float()


@torch.no_grad()
def window_probabilities(members: list[Member], span: torch.Tensor, starts: list[int],
                         length: int) -> torch.Tensor:
    """Class probabilities [windows, classes] of the windows of ``span`` (mono [T], no
    padding) that start at ``starts``, ``length`` samples each: one model's, or the mean of an
    ensemble's. A model that pools steps (:func:`pools_steps`) makes one pass over the span
    (:func:`shared_steps_logits`); any other scores each window alone."""
    total = None
    for member in members:
        classifier = member.classifier
        if pools_steps(classifier.model):
            scores = probabilities_of(shared_steps_logits(classifier, span, starts, length,
                                                          member.scoring))
        else:
            windows = torch.stack([span[start:start + length] for start in starts])
            scores = mean_probabilities([member], windows,
                                        torch.full((len(starts),), length))
        total = scores if total is None else total + scores
    return total / len(members)
