"""What the mel featurizers share: their STFT and mel settings (checked once, in one place) and
the description of torchaudio's mel power stage that power-stage augmentations read."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio

from esc50 import PowerFeaturizer


# The report's STFT and mel settings: the defaults of plugins.logmel and plugins.mfcc.
N_FFT, WIN_LENGTH, HOP_LENGTH, N_MELS = 1024, 1024, 256, 64


@dataclass(frozen=True)
class MelSettings:
    """An STFT of ``n_fft`` points (a Hann window of ``win_length`` samples, centred, every
    ``hop_length`` samples) summed into ``n_mels`` mel bands, at ``sample_rate``."""

    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int

    def checked(self, clip_samples: int | None) -> MelSettings:
        """Self, after checking that the settings work together and with a clip of
        ``clip_samples`` samples, where known (a ValueError naming the option otherwise)."""
        for name in ("n_fft", "win_length", "hop_length", "n_mels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length={self.win_length} exceeds n_fft={self.n_fft}")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels={self.n_mels} exceeds the n_fft // 2 + 1 = "
                             f"{self.n_fft // 2 + 1} frequency bins that n_fft={self.n_fft} gives")
        if clip_samples is not None and clip_samples < self.n_fft:
            raise ValueError(f"a clip (length_wav={clip_samples} samples) is shorter than one "
                             f"analysis window (n_fft={self.n_fft})")
        return self

    def spectrogram(self, center: bool = True) -> torchaudio.transforms.MelSpectrogram:
        """torchaudio's mel power spectrogram with these settings."""
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=self.n_fft, win_length=self.win_length,
            hop_length=self.hop_length, n_mels=self.n_mels, center=center,
            window_fn=torch.hann_window)

    def describe(self, featurizer: PowerFeaturizer, filterbank: torch.Tensor) -> None:
        """Set a PowerFeaturizer's ``filterbank`` ([STFT bins, bands]), STFT frequencies and
        window, and its ``min_samples`` (one analysis window)."""
        featurizer.register_buffer("filterbank", filterbank.clone(), persistent=False)
        featurizer.register_buffer("frequencies", torch.linspace(0, self.sample_rate / 2,
                                                                 self.n_fft // 2 + 1),
                                   persistent=False)
        window = torch.hann_window(self.win_length)  # torch.stft centres it in n_fft samples
        left = (self.n_fft - self.win_length) // 2
        featurizer.register_buffer("window", torch.nn.functional.pad(
            window, (left, self.n_fft - self.win_length - left)), persistent=False)
        featurizer.min_samples = self.win_length
