"""What the trainer expects of each kind of plugin component.

- A featurizer turns a float batch of waveforms ``[B, T]`` into features ``[B, C, F, frames]``
  and maps lengths in samples to lengths in frames.
- A model maps ``(features [B, C, F, frames], frame_lengths [B])`` to logits ``[B, classes]``.
- A :class:`PowerFeaturizer` computes its features in two steps, ``compress(power(wav))``: a
  linear power spectrogram ``[B, C, bands, frames]`` (STFT power summed through a filterbank),
  then a compression (log, dB, DCT). Augmentations can work between the two.
- An augmentation transforms a training batch at one stage (``"wave"``: ``[B, T]`` waveforms in
  [-1, 1]; ``"power"``: a PowerFeaturizer's power spectrogram; ``"spec"``: ``[B, C, F, frames]``
  features; ``"batch"``: features and label probabilities ``[B, classes]`` together,
  ``forward(x, targets, generator) -> (x, targets)``), drawing its randomness from the
  ``torch.Generator`` it is given, so every draw follows the run's seed. Before training it is
  shown the run's featurizer once (``attach``).
"""

from __future__ import annotations

from typing import Callable, ClassVar

import torch
from torch import nn

from esc50.core.errors import Esc50Error


class Featurizer(nn.Module):
    """Base class for featurizers (no trainable parameters; runs on the training device)."""

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        """(channels, bins, frames) of the features of a clip of ``num_samples`` samples."""
        raise NotImplementedError

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per clip, given valid samples per clip."""
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
        """[B, T] waveforms -> [B, C, bands, frames] linear power."""
        raise NotImplementedError

    def compress(self, power: torch.Tensor) -> torch.Tensor:
        """Power spectrogram -> the features the model sees."""
        raise NotImplementedError

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.compress(self.power(wav))


class Augmentation(nn.Module):
    """Base class for augmentations: each example is transformed with probability ``p``."""

    stage: ClassVar[str] = "wave"

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_range("p", p, 0.0, 1.0)
        self.p = p

    def chosen(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Boolean mask [B]: which examples of the batch this augmentation transforms."""
        return torch.rand(batch_size, generator=generator, device=generator.device) < self.p

    @staticmethod
    def on_chosen(x: torch.Tensor, chosen: torch.Tensor,
                  transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``transform`` applied to the chosen examples only (for costly transforms); the
        others come back unchanged."""
        if not chosen.any():
            return x
        out = x.clone()
        out[chosen] = transform(x[chosen])
        return out

    def attach(self, featurizer: Featurizer) -> None:
        """Called once before training with the run's featurizer (power-stage augmentations
        read its filterbank); checks that the two can work together."""

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


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
