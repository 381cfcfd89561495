"""What the power-stage augmentations share: the featurizer check, the band centres, and noise
drawn directly as band power. They are the fast versions of the waveform augmentations: they work
on a PowerFeaturizer's cached power spectrogram, so a run that uses only them featurizes every
clip once instead of every epoch (see docs/augmentations.md for how close each one is)."""

from __future__ import annotations

import itertools

import torch

from esc50 import Esc50Error, Featurizer, PowerFeaturizer

EPS = 1e-12


class PowerStage:
    """What a power-spectrogram twin adds to the waveform augmentation it subclasses (whose
    options, defaults, checks and draws it shares): the ``power`` stage, and an ``attach`` that
    requires a PowerFeaturizer and keeps it as ``self.featurizer``."""

    name: str
    stage = "power"
    featurizer: PowerFeaturizer

    def attach(self, featurizer: Featurizer) -> None:
        self.featurizer = require_power(self.name, featurizer)


def require_power(name: str, featurizer: Featurizer) -> PowerFeaturizer:
    """The featurizer, if it has a power stage; else a one-line error naming both."""
    if not isinstance(featurizer, PowerFeaturizer):
        raise Esc50Error(f"augmentation {name} works on a power spectrogram, which featurizer "
                         f"{getattr(featurizer, 'name', type(featurizer).__name__)} does not have: "
                         f"use a mel featurizer (plugins.logmel, plugins.mfcc) or the waveform "
                         f"version ({name.removeprefix('spec_')})")
    return featurizer


def band_centres(featurizer: PowerFeaturizer) -> torch.Tensor:
    """Centre frequency (Hz) of each band: the filter-weighted mean of its STFT frequencies."""
    weights = featurizer.filterbank
    return (featurizer.frequencies @ weights) / weights.sum(dim=0).clamp(min=EPS)


def noise_bands(psd: torch.Tensor, featurizer: PowerFeaturizer, frames: int,
                generator: torch.Generator) -> torch.Tensor:
    """Band power [B, 1, bands, frames] of Gaussian noise whose expected STFT power is ``psd``
    [B, STFT bins]. Each STFT bin's power is exponentially distributed, and neighbouring bins are
    correlated through the window; a band sums them through its filter, so its power is drawn
    from the gamma distribution with that sum's mean and variance."""
    weights = featurizer.filterbank.to(psd.device)
    mean = psd @ weights  # [B, bands]
    weighted = psd[:, :, None] * weights[None]  # [B, STFT bins, bands]
    variance = weighted.pow(2).sum(dim=1)
    for distance, correlation in enumerate(bin_correlations(featurizer.window), start=1):
        variance += 2 * correlation * (weighted[:, distance:] * weighted[:, :-distance]).sum(dim=1)
    shape = (mean.pow(2) / variance.clamp(min=EPS)).clamp(min=1.0)
    shape = shape[..., None].expand(*shape.shape, frames).to(generator.device)
    draws = standard_gamma(shape, generator) / shape
    return (mean[..., None].to(draws.device) * draws).unsqueeze(1)


def bin_correlations(window: torch.Tensor, smallest: float = 1e-3) -> list[float]:
    """Correlation of the powers of STFT bins 1, 2, ... apart for white noise under ``window``
    (the squared magnitude of the normalised spectrum of window^2), while above ``smallest``."""
    spectrum = torch.fft.fft(window.double().pow(2)).abs()
    correlations = (spectrum / spectrum[0]).pow(2)[1:window.shape[0] // 2].tolist()
    return [c for c in itertools.takewhile(lambda c: c > smallest, correlations)]


def standard_gamma(shape: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gamma(shape, 1) draws (shape >= 1) from ``generator``: Wilson-Hilferty's cube of a normal
    for Gamma(shape + 1), scaled by U^(1/shape) (Marsaglia and Tsang's boost), which keeps the
    draws positive and the small-shape tail right."""
    boosted = shape + 1.0
    c = 1.0 / (9.0 * boosted)
    normal = torch.randn(shape.shape, generator=generator, device=generator.device)
    gamma = boosted * (1.0 - c + normal * c.sqrt()).clamp_(min=1e-3).pow_(3)
    uniform = 1.0 - torch.rand(shape.shape, generator=generator, device=generator.device)
    return gamma * uniform.pow_(1.0 / shape)
