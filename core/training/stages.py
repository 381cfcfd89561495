"""The one path of a batch from waveforms to the model, used by training, by the set-up checks
and by a trained classifier (prediction, evaluation, export):

1. ``wave`` augmentations (training only), on ``[B, T]`` waveforms;
2. the featurizer: for a :class:`PowerFeaturizer` its power spectrogram, then the ``power``
   augmentations (training only), then its compression; any other featurizer in one call;
3. the normalization (per-frequency statistics of the training clips);
4. ``features`` augmentations (training only);
5. ``batch`` augmentations (training only: mixup), which see features and label probabilities.

A feature cache holds what step 2 gives before any power-stage augmentation (the power
spectrogram, or the features), so cached training batches resume at :meth:`Stages.finish`.

Augmentations within a stage run under a policy:
- ``all`` (default): every augmentation runs, each on the examples its own ``p`` picks.
- ``one-of`` (the report's policy): within each of the wave, power and features stages, each
  example gets one augmentation drawn uniformly from that stage's list plus "none"; that
  augmentation's ``p`` still applies (use ``p=1`` to reproduce the report).
Batch-stage augmentations (mixup) always run on the whole batch.

Every plugin call goes through :func:`esc50.core.plugin_api.checks.call` when the stages know the
plugins' names (a run's do): an exception inside a plugin, or an output of the wrong shape or
dtype, is one line naming the plugin, the stage and the step; with ``checked`` also every value
is checked to be finite (the set-up pass, and the re-check of a batch whose loss went
non-finite).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from esc50.core.data.audio import to_float
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api import checks
from esc50.core.plugin_api.contracts import Augmentation, PowerFeaturizer, Randomness, to_device

if TYPE_CHECKING:
    from esc50.core.config import TaskConfig
    from esc50.core.plugin_api.choices import RunPlugins
    from esc50.core.training.classifier import Classifier

STAGES = ("wave", "power", "features", "batch")  # in the order a training batch meets them
Generator = torch.Generator | Randomness


@dataclass
class BatchRecord:
    """Where a prepared batch came from, enough to prepare it again exactly: the loader's batch
    (clip indices, labels, waveforms where batches carry them), the states of the augmentation
    generators before it was prepared (None: unaugmented), and where in the run it is."""

    loaded: dict[str, torch.Tensor]
    draws: tuple[torch.Tensor, ...] | None
    where: str


@dataclass
class PreparedBatch:
    """A batch through the stages: features in the model's memory layout, frame lengths,
    targets (label probabilities [B, classes] in training, class indices [B] in validation),
    and its own record."""

    features: torch.Tensor
    frames: torch.Tensor
    targets: torch.Tensor
    record: BatchRecord

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.features, self.frames, self.targets


def draw_states(generator: Generator) -> tuple[torch.Tensor, ...]:
    """The states of what an augmentation may draw from: torch's global generator (a sampler
    that takes no generator draws there: mixup's Beta), then the augmentation generators (one
    when ``examples`` is ``signals``)."""
    randomness = Randomness.of(generator)
    states = [torch.get_rng_state(), randomness.examples.get_state()]
    if randomness.signals is not randomness.examples:
        states.append(randomness.signals.get_state())
    return tuple(states)


@contextmanager
def replaying(generator: Generator, states: tuple[torch.Tensor, ...]) -> Iterator[Randomness]:
    """New generators like ``generator``'s at ``states`` (from :func:`draw_states`), and
    torch's global generator at its recorded state while inside: drawing repeats the draws made
    from that point. The run's own generators, and the global one afterwards, are untouched."""
    randomness = Randomness.of(generator)
    copies = []
    for original, state in zip((randomness.examples, randomness.signals), states[1:]):
        copy = torch.Generator(device=original.device)
        copy.set_state(state)
        copies.append(copy)
    now = torch.get_rng_state()
    torch.set_rng_state(states[0])
    try:
        yield Randomness(copies[0], copies[-1])
    finally:
        torch.set_rng_state(now)


class AugmentationPipeline:
    """The augmentations of a run, grouped by stage."""

    def __init__(self, augs: list[Augmentation], policy: str = "all") -> None:
        for aug in augs:
            if aug.stage not in STAGES:
                raise Esc50Error(f"augmentation {type(aug).__name__} has stage {aug.stage!r}; "
                                 f"expected one of {', '.join(STAGES)}")
        self.policy = policy
        self.by_stage = {stage: [a for a in augs if a.stage == stage] for stage in STAGES}

    def __bool__(self) -> bool:
        return any(self.by_stage.values())

    def __iter__(self) -> Iterator[Augmentation]:
        return (aug for stage in STAGES for aug in self.by_stage[stage])

    def transform(self, stage: str, x: torch.Tensor, lengths: torch.Tensor, generator: Generator,
                  run: Callable[[Augmentation, torch.Tensor, torch.Tensor, Generator],
                                tuple[torch.Tensor, torch.Tensor]] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the ``wave``, ``power`` or ``features`` augmentations to ``x`` (first axis:
        examples, last: time) whose valid lengths are ``lengths`` [B]; returns both after
        them. ``run(aug, x, lengths, generator)`` applies one augmentation (default: directly)."""
        run = run or _apply
        augs = self.by_stage[stage]
        if self.policy == "all" or len(augs) == 0:
            for aug in augs:
                x, lengths = run(aug, x, lengths, generator)
            return x, lengths
        draws = Randomness.of(generator).examples
        choice = torch.randint(len(augs) + 1, (x.shape[0],), generator=draws,
                               device=draws.device)
        out, out_lengths = x.clone(), lengths.clone()
        for i, aug in enumerate(augs, start=1):
            picked = (choice == i).nonzero().squeeze(1)  # no wait for the device on the host
            if picked.numel():
                picked = to_device(picked, x)
                y, y_lengths = run(aug, x.index_select(0, picked),
                                   lengths.index_select(0, picked), generator)
                out.index_copy_(0, picked, y)
                out_lengths.index_copy_(0, picked, y_lengths)
        return out, out_lengths


def _apply(aug: Augmentation, x: torch.Tensor, lengths: torch.Tensor, generator: Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    x = aug(x, generator)
    return x, aug.valid_lengths(lengths, x.shape[-1])


class Stages:
    """The stages above for one classifier (its featurizer, normalizer and model input layout)
    and, in training, its augmentations. ``labels`` name each plugin component (by the object)
    in messages; without them plugin calls are made directly (a trained classifier, export).
    ``where`` says where in the run the current batch is (set by whoever feeds batches)."""

    def __init__(self, classifier: Classifier, augs: AugmentationPipeline | None = None,
                 labels: dict[Any, str] | None = None, checked: bool = False,
                 where: str = "") -> None:
        self.classifier = classifier
        self.augs = augs or AugmentationPipeline([])
        self.labels = labels or {}
        self.checked = checked
        self.where = where

    def at(self, where: str, checked: bool = False) -> Stages:
        """These stages for the batch at ``where`` (said in messages), with every output checked
        (finite values too) when ``checked``."""
        return Stages(self.classifier, self.augs, self.labels, checked, where)

    @property
    def has_power_stage(self) -> bool:
        return isinstance(self.classifier.featurizer, PowerFeaturizer)

    def featurize(self, wav: torch.Tensor, samples: torch.Tensor,
                  generator: Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms [B, T] and valid samples [B] -> what a feature cache holds (the power
        spectrogram of a PowerFeaturizer, else the features) and frame lengths; with a
        ``generator`` (training) after the wave augmentations."""
        if generator is not None:
            wav, samples = self.augment("wave", wav, samples, generator)
        featurizer = self.classifier.featurizer
        name = self._label(featurizer)
        frames = self._call(featurizer, "featurizer", featurizer.frame_lengths, samples)
        if name:
            self._check(checks.check_frames, frames, wav.shape[0], name)
            if self.checked:
                self._check(checks.check_frames_positive, frames, name)
        if self.has_power_stage:
            out = self._call(featurizer, "featurizer (power)", featurizer.power, wav)
        else:
            out = self._call(featurizer, "featurizer", featurizer, wav)
            self._check_features(out, wav.shape[0])
        if name and self.checked and isinstance(out, torch.Tensor) and out.dim() >= 1:
            declared = self._call(featurizer, "featurizer", featurizer.output_shape,
                                  wav.shape[-1])[2]
            self._check(checks.check_time_axis, out, frames, samples, wav.shape[-1],
                        declared, name)
        return out, frames

    def finish(self, x: torch.Tensor, frames: torch.Tensor, generator: Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """What :meth:`featurize` gives -> normalized features, with a ``generator`` (training)
        after the power augmentations (the ``features`` augmentations come next:
        :meth:`augment`)."""
        featurizer = self.classifier.featurizer
        if self.has_power_stage:
            if generator is not None:
                x, frames = self.augment("power", x, frames, generator)
            x = self._call(featurizer, "featurizer (compression)", featurizer.compress, x)
            self._check_features(x, frames.shape[0])
        if self.classifier.normalizer is not None:
            x = self.classifier.normalizer(x)
        return x, frames

    def run(self, wav: torch.Tensor | None, samples: torch.Tensor | None,
            generator: Generator | None = None, targets: torch.Tensor | None = None,
            cached: tuple[torch.Tensor, torch.Tensor] | None = None, finished: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Every stage, in the one order of the module docstring: from waveforms [B, T] with
        their valid ``samples``, or from ``cached`` (what :meth:`featurize` gives; already
        through :meth:`finish` when ``finished``). With a ``generator`` (training) the
        augmentations run, and the ``batch`` stage mixes ``targets`` (label probabilities) with
        the features. Returns features (:meth:`Classifier.model_input` gives them the model's
        memory layout), frame lengths and targets."""
        x, frames = cached if cached is not None else self.featurize(wav, samples, generator)
        if not finished:
            x, frames = self.finish(x, frames, generator)
        if generator is not None:
            x, frames = self.augment("features", x, frames, generator)
            if targets is not None:
                x, targets = self.mix(x, targets, generator)
        return x, frames, targets

    def __call__(self, wav: torch.Tensor, samples: torch.Tensor,
                 generator: Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and frame lengths of waveforms (:meth:`run` without targets)."""
        features, frames, _ = self.run(wav, samples, generator)
        return features, frames

    def augment(self, stage: str, x: torch.Tensor, lengths: torch.Tensor, generator: Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One stage's augmentations, each call named and its output checked."""
        return self.augs.transform(stage, x, lengths, generator, self._augmentation)

    def mix(self, features: torch.Tensor, targets: torch.Tensor, generator: Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch-stage augmentations (features and label probabilities together)."""
        for aug in self.augs.by_stage["batch"]:
            out = self._call(aug, "batch", aug, features, targets, generator)
            if (name := self._label(aug)):
                self._check(checks.check_mixed, features, targets, out, name, self.checked)
            features, targets = out
        return features, targets

    def logits(self, model: Callable[..., torch.Tensor], features: torch.Tensor,
               frames: torch.Tensor) -> torch.Tensor:
        """``model(features, frames)`` (the run's model, or a wrapper of it), named and checked."""
        logits = self._call(self.classifier.model, "model", model, features, frames)
        if (name := self._label(self.classifier.model)):
            self._check(checks.check_logits, logits, features.shape[0],
                        self.classifier.num_classes, name, self.checked)
        return logits

    def _augmentation(self, aug: Augmentation, x: torch.Tensor, lengths: torch.Tensor,
                      generator: Generator) -> tuple[torch.Tensor, torch.Tensor]:
        out = self._call(aug, aug.stage, aug, x, generator)
        name = self._label(aug)
        if name:
            self._check(checks.check_transformed, x, out, name, self.checked)
        lengths = self._call(aug, aug.stage, aug.valid_lengths, lengths, out.shape[-1])
        if name:
            self._check(checks.check_frames, lengths, x.shape[0], name, "valid_lengths")
            if self.checked:
                self._check(checks.check_frames_positive, lengths, name, "valid_lengths")
        return out, lengths

    def _check_features(self, features: torch.Tensor, batch: int) -> None:
        if (name := self._label(self.classifier.featurizer)):
            self._check(checks.check_features, features, batch, self.classifier.feature_shape,
                        name, self.checked)

    def _check(self, check: Callable[..., None], *args: Any) -> None:
        """A check of :mod:`esc50.core.plugin_api.checks`, its message saying where it failed."""
        try:
            check(*args)
        except Esc50Error as exc:
            raise Esc50Error(f"{exc}{self.where}") from None

    def _label(self, component: Any) -> str:
        return self.labels.get(component, "")

    def _call(self, component: Any, stage: str, function: Callable[..., Any], *args: Any) -> Any:
        name = self._label(component)
        if not name:
            return function(*args)
        return checks.call(name, stage, self.where, function, *args)



def build_stages(classifier: Classifier, plugins: RunPlugins, config: TaskConfig,
                 device: torch.device) -> tuple[dict[str, Augmentation], Stages]:
    """A run's augmentations (by spec, built, on ``device`` and shown the featurizer) and its
    stages, every plugin component labelled for messages."""
    augs = {c.spec: c.build(config).to(device) for c in plugins.augs}
    for aug in augs.values():
        aug.attach(classifier.featurizer)
    labels = {classifier.featurizer: plugins.featurizer.label,
              classifier.model: plugins.model.label,
              **{augs[c.spec]: c.label for c in plugins.augs}}
    return augs, Stages(classifier, AugmentationPipeline(list(augs.values()), config.aug_policy),
                        labels)


@torch.no_grad()
def setup_pass(stages: Stages, batch: dict[str, torch.Tensor], num_classes: int, seed: int,
               device: torch.device) -> None:
    """``batch`` (collated training clips) through every stage of the run and its model, with
    every output checked, before the run makes its folder. Its draws come from a generator of
    its own and torch's global random state is put back, so a run is the same with or without
    it."""
    global_state = torch.get_rng_state()
    generator = torch.Generator(device=device).manual_seed(seed)
    checked = stages.at(" in the set-up pass (two training clips)", checked=True)
    wav, lengths = to_float(batch["wav"]).to(device), batch["length"].to(device)
    targets = torch.nn.functional.one_hot(batch["label"], num_classes).float().to(device)
    features, frames, _ = checked.run(wav, lengths, generator, targets)
    model = stages.classifier.model
    model.eval()
    checked.logits(model, stages.classifier.model_input(features), frames)
    model.train()
    torch.set_rng_state(global_state)
