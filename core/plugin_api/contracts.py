"""What the trainer expects of each kind of plugin component.

- A featurizer turns a float batch of waveforms ``[B, T]`` into features ``[B, C, F, frames]``
  and maps lengths in samples to lengths in frames.
- A model maps ``(features [B, C, F, frames], frame_lengths [B])`` to logits ``[B, classes]``.
- A :class:`PowerFeaturizer` computes its features in two steps, ``compress(power(wav))``: a
  linear power spectrogram ``[B, C, bands, frames]`` (STFT power summed through a filterbank),
  then a compression (log, dB, DCT). Augmentations can work between the two.
- An augmentation transforms a training batch at one stage (``"wave"``: ``[B, T]`` waveforms in
  [-1, 1]; ``"power"``: a PowerFeaturizer's power spectrogram; ``"features"``: the normalized
  features ``[B, C, F, frames]`` the model sees; ``"batch"``: features and label probabilities
  ``[B, classes]`` together, see :class:`BatchAugmentation`), drawing its randomness from the
  ``torch.Generator`` it is given, so every draw follows the run's seed. Before training it is
  shown the run's featurizer once (``attach``).
- A dataset reader (:class:`DatasetReader`) lists the labelled clips of a folder as a
  :class:`ClipTable`.
- A logger (:class:`Logger`) receives a run's events.

Plugins import these names from ``esc50`` itself (``from esc50 import Augmentation``).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator

import torch
from torch import nn

from esc50.core.errors import Esc50Error
from esc50.core.moved import renamed
# The base classes of datasets and loggers live beside this module; every kind's base class is
# found here, where plugins' imports from ``esc50`` lead.
from esc50.core.plugin_api.data_contracts import (Clip, ClipTable, DatasetReader,  # noqa: F401
                                                  Logger, RunStart)


class Featurizer(nn.Module):
    """Base class for featurizers (no trainable parameters; runs on the training device).

    ``min_samples``: the shortest clip, in valid samples, that gives at least one frame of real
    signal (an STFT featurizer: its window length); shorter clips are refused as bad files, since
    they would train as padding."""

    min_samples: int = 1

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        """The shape of one clip's features.

        Args:
            num_samples: the clip's length in samples at the run's sample rate.

        Returns:
            ``(channels, bins, frames)``: what ``forward`` gives for such a clip (checked in
            the set-up pass before training, and by ``esc50.check_featurizer``). Called when a
            run is built (the model's ``input_shape``) and by the memory plan."""
        raise NotImplementedError

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per clip.

        Args:
            lengths: ``[B]`` valid samples of each clip (the rest of its row is zero padding).

        Returns:
            ``[B]`` frames of each clip's features that hold real signal (at least one, at
            most the frames ``forward`` gives): the model pools over these only, so a clip
            scores the same alone and in a padded batch."""
        raise NotImplementedError


class PowerFeaturizer(Featurizer):
    """A featurizer whose features are ``compress(power(wav))``. It sets ``filterbank``
    ([STFT bins, bands]: band power = STFT power @ filterbank), ``frequencies`` ([STFT bins], Hz)
    and ``window`` ([n_fft], the analysis window as the STFT applies it), from which power-stage
    augmentations work out the band power that added noise brings."""

    filterbank: torch.Tensor
    frequencies: torch.Tensor
    window: torch.Tensor

    def power(self, wav: torch.Tensor) -> torch.Tensor:
        """The linear power spectrogram.

        Args:
            wav: ``[B, T]`` float32 waveforms in [-1, 1] at the run's sample rate.

        Returns:
            ``[B, C, bands, frames]`` STFT power summed through ``filterbank`` (no log):
            where power-stage augmentations work. Called once per clip when features are
            cached, else per batch."""
        raise NotImplementedError

    def compress(self, power: torch.Tensor) -> torch.Tensor:
        """The features the model sees.

        Args:
            power: ``[B, C, bands, frames]`` from :meth:`power` (augmented or not).

        Returns:
            ``[B, C, F, frames]`` compressed features (log, dB, DCT), before normalization."""
        raise NotImplementedError

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.compress(self.power(wav))


@dataclass(frozen=True)
class Randomness:
    """Where an augmentation's randomness comes from: ``examples``, the few numbers drawn per
    example (which examples are transformed, their parameters), and ``signals``, random signals
    as large as the batch (noise). In training on a GPU ``examples`` is a CPU generator, so that
    deciding which clips to transform (and the shapes that follow) never waits for the GPU, and
    ``signals`` is on the GPU. A single generator serves as both (any call that passes a
    ``torch.Generator``)."""

    examples: torch.Generator
    signals: torch.Generator

    @classmethod
    def of(cls, source: torch.Generator | Randomness) -> Randomness:
        return source if isinstance(source, Randomness) else cls(source, source)

    @property
    def draws(self) -> torch.Generator:
        """Deprecated name of :attr:`examples` (plugin API 4)."""
        renamed("Randomness.draws", "Randomness.examples")
        return self.examples

    @property
    def bulk(self) -> torch.Generator:
        """Deprecated name of :attr:`signals` (plugin API 4)."""
        renamed("Randomness.bulk", "Randomness.signals")
        return self.signals


def to_device(draw: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A draw moved to ``like``'s device without waiting for the device's queued work (a plain
    ``.to(device)`` of a CPU tensor makes the host wait for the GPU to finish)."""
    return draw.to(like.device, non_blocking=True)


class Augmentation(nn.Module):
    """Base class for augmentations, with audiomentations' draw-then-apply template, batched:
    :meth:`forward` draws which examples are transformed (each with probability ``p``), asks
    :meth:`sample` for per-example parameters, records them, and calls :meth:`apply`. A plugin
    implements ``sample`` and ``apply``; none re-implements ``p``.

    Parameters are drawn for every example of the batch (used or not), so the draws of one
    example do not depend on which others were chosen. They come from ``Randomness.examples``: in
    training on a GPU they are CPU tensors, which :meth:`apply` moves with :func:`to_device`.
    Bulk randomness in ``apply`` comes from the generator it is given (``Randomness.signals``)."""

    stage: ClassVar[str] = "wave"
    draws_on_device = False  # set for plugins of API 3 and earlier (plugin_api/adapters.py)

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_range("p", p, 0.0, 1.0)
        self.p = p
        self.last_params: dict[str, torch.Tensor] = {}  # "chosen" and the last batch's draws
        self.reset_counts()

    def chosen(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Boolean mask [B]: which examples of the batch this augmentation transforms."""
        return torch.rand(batch_size, generator=generator, device=generator.device) < self.p

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw this batch's per-example parameters.

        Args:
            batch_size: ``B``, the examples of the batch.
            generator: the run's generator of per-example draws (on the CPU; seeded, so
                every draw follows the run's seed and replays exactly).

        Returns:
            ``{name: [B] tensor}`` (a gain per example, a shift, ...), passed to :meth:`apply`
            and kept as ``last_params``. Called once per training batch, never in
            validation or prediction."""
        return {}

    def apply(self, x: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        """Transform the chosen examples.

        Args:
            x: the batch at the augmentation's ``stage`` (``[B, T]`` waveforms, ``[B, C,
                bands, frames]`` power or ``[B, C, F, frames]`` features) on the training
                device.
            chosen: ``[B]`` booleans, the examples to transform (drawn with ``p``; CPU).
            params: :meth:`sample`'s draws (CPU tensors: move them with ``to_device``).
            generator: where bulk randomness (a noise signal) comes from, on the device.

        Returns:
            ``x``'s shape and dtype, the chosen examples transformed, the others unchanged."""
        raise NotImplementedError

    def valid_lengths(self, lengths: torch.Tensor, size: int) -> torch.Tensor:
        """Each example's valid length after the last :meth:`forward`, from ``lengths`` [B]
        before it (samples at the wave stage, frames at the power and features stages; ``size``:
        the padded length). The default keeps them; an augmentation that changes a clip's
        duration (time stretch) overrides it, reading its draws from ``last_params``."""
        return lengths

    def forward(self, x: torch.Tensor, generator: torch.Generator | Randomness) -> torch.Tensor:
        randomness = self._randomness(generator)
        chosen, params = self._draw(x.shape[0], randomness.examples)
        return self.apply(x, chosen, params, randomness.signals)

    def _randomness(self, generator: torch.Generator | Randomness) -> Randomness:
        """The generators to draw from; one on the training device for both where the plugin
        was written before per-example draws moved to the host (plugin API 3 and earlier)."""
        randomness = Randomness.of(generator)
        return Randomness.of(randomness.signals) if self.draws_on_device else randomness

    def _draw(self, batch_size: int, generator: torch.Generator
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        chosen = self.chosen(batch_size, generator)
        params = self.sample(batch_size, generator)
        self.last_params = {"chosen": chosen, **params}
        self.transformed = self.transformed + chosen.sum()
        self.seen += batch_size
        return chosen, params

    def reset_counts(self) -> None:
        self.seen = 0
        self.transformed: torch.Tensor | int = 0  # a tensor: counting never waits for the device

    def counts(self) -> dict[str, int]:
        """How many examples this augmentation was shown and transformed since the last reset."""
        return {"seen": self.seen, "transformed": int(self.transformed)}

    @staticmethod
    def on_chosen(x: torch.Tensor, chosen: torch.Tensor,
                  transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``transform`` applied to the chosen examples only (for costly transforms); the
        others come back unchanged."""
        rows = chosen.nonzero().flatten()  # no wait for the device when drawn on the host
        if not len(rows):
            return x
        rows = to_device(rows, x)
        return x.index_copy(0, rows, transform(x.index_select(0, rows)))

    def attach(self, featurizer: Featurizer) -> None:
        """Called once before training with the run's featurizer (power-stage augmentations
        read its filterbank); checks that the two can work together."""


class BatchAugmentation(Augmentation):
    """Base class for ``batch``-stage augmentations, which see features and label
    probabilities ``[B, classes]`` together (mixup): the same template, with ``apply(features,
    targets, chosen, params, generator) -> (features, targets)``."""

    stage: ClassVar[str] = "batch"

    def apply(self, features: torch.Tensor, targets: torch.Tensor,  # type: ignore[override]
              chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, features: torch.Tensor, targets: torch.Tensor,  # type: ignore[override]
                generator: torch.Generator | Randomness) -> tuple[torch.Tensor, torch.Tensor]:
        randomness = self._randomness(generator)
        chosen, params = self._draw(features.shape[0], randomness.examples)
        return self.apply(features, targets, chosen, params, randomness.signals)


def frame_mask(frames: int, lengths: torch.Tensor) -> torch.Tensor:
    """[B, frames] booleans: True on the first ``lengths[b]`` frames (at least one, at most
    ``frames``), the ones that hold real, not padded, input."""
    valid = lengths.clamp(1, frames)
    return torch.arange(frames, device=lengths.device)[None, :] < valid[:, None]


_tracing = threading.local()  # this thread's exporter: ``whole_clips`` while it traces such a graph


def whole_clips() -> bool:
    """Whether the graph being traced scores whole clips only: every clip's ``frame_lengths``
    is all its frames, as in the graph ``esc50 export --quantize int8`` traces for recordings of
    at least one window. A model may leave its masking of padded frames out of such a graph
    (where a graph is traced its lengths cannot be read). False everywhere else, and in every
    other thread."""
    return getattr(_tracing, "whole_clips", False)


@contextmanager
def tracing_whole_clips() -> Iterator[None]:
    """Within, in this thread: :func:`whole_clips` is True (for the exporter, around tracing
    such a graph)."""
    before = whole_clips()
    _tracing.whole_clips = True
    try:
        yield
    finally:
        _tracing.whole_clips = before


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise a one-line error when ``value`` is outside [low, high]."""
    if not low <= value <= high:
        raise Esc50Error(f"option {name}={value} is out of range: expected {low} <= {name} <= {high}")


def check_min_max(prefix: str, low: float, high: float,
                  bounds: tuple[float, float] | None = None) -> None:
    """Raise a one-line error when a ``min_<prefix>``/``max_<prefix>`` pair is inverted or,
    given ``bounds``, leaves them."""
    if bounds is not None:
        check_range(f"min_{prefix}", low, *bounds)
        check_range(f"max_{prefix}", high, *bounds)
    if low > high:
        raise Esc50Error(f"option min_{prefix}={low} is larger than max_{prefix}={high}")


def uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws from U[low, high] on the generator's device."""
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)
