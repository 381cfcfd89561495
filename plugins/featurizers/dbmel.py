"""Mel power in decibels through librosa's (Slaney) mel filterbank: the front ends the published
AudioSet networks were trained with, so that their checkpoints see the features they know.

Sources of each choice:
- ``panns_logmel`` (PANNs CNN14; Kong et al. 2020, code: github.com/qiuqiangkong/
  audioset_tagging_cnn and the ``panns-inference`` package): torchlibrosa's ``Spectrogram``
  (periodic Hann window, centred with reflection, power 2) and ``LogmelFilterBank``
  (``librosa.filters.mel`` at 32 kHz, n_fft 1024, 64 bands from 50 to 14 000 Hz; ``10 log10``
  of the power floored at 1e-10, reference 1, no top_db): window 1024, hop 320.
- ``kumar_logmel`` (Kumar et al. 2018, code: github.com/anuragkr90/weak_feature_extractor):
  librosa's mel spectrogram at 44.1 kHz, n_fft 1024, hop 512, 128 bands over the whole band,
  in dB as ``librosa.power_to_db`` gives it with its defaults (reference 1, floor 1e-10, top_db
  80 below the clip's peak).
- Both run as a :class:`PowerFeaturizer` (power, then dB), so the power-stage augmentations
  work with them, and a clip's features do not depend on its batch (top_db per clip).

The base of both; each registers from its own module (``panns_logmel.py``, ``kumar_logmel.py``),
so an entry point's name is the id it registers.
"""

from __future__ import annotations

import librosa
import torch

from esc50 import PowerFeaturizer, TaskConfig
from esc50.plugins.featurizers.mel import MelSettings

FLOOR = 1e-10  # librosa's and torchlibrosa's amin


def slaney_filterbank(settings: MelSettings, f_min: float, f_max: float) -> torch.Tensor:
    """librosa's mel filterbank ([STFT bins, bands]: Slaney's mel scale and area norm)."""
    bank = librosa.filters.mel(sr=settings.sample_rate, n_fft=settings.n_fft,
                               n_mels=settings.n_mels, fmin=f_min, fmax=f_max or None)
    return torch.from_numpy(bank).T.contiguous().float()


class DbMel(PowerFeaturizer):
    """Mel power through librosa's filterbank, in dB (what the published checkpoints use)."""

    def __init__(self, config: TaskConfig, n_fft: int, win_length: int, hop_length: int,
                 n_mels: int, f_min: float, f_max: float, top_db: float) -> None:
        """Options:
        n_fft: STFT size in samples
        win_length: Hann window length in samples (at most n_fft)
        hop_length: samples between frames
        n_mels: mel bands
        f_min: lowest frequency of the mel bands, Hz
        f_max: highest frequency of the mel bands, Hz (0: half the sample rate)
        top_db: dynamic range kept below each clip's peak, dB (0: all)
        """
        super().__init__()
        self.settings = MelSettings(config.sample_rate, n_fft, win_length, hop_length,
                                    n_mels).checked(config.length_wav)
        nyquist = config.sample_rate / 2
        if not 0 <= f_min < (f_max or nyquist) <= nyquist:
            raise ValueError(f"need 0 <= f_min={f_min} < f_max={f_max} <= {nyquist:g} Hz (half "
                             f"the sample rate {config.sample_rate}; f_max=0: that)")
        if top_db < 0:
            raise ValueError(f"top_db={top_db} must be at least 0 (0: no floor)")
        self.top_db = top_db
        self.settings.describe(self, slaney_filterbank(self.settings, f_min, f_max))

    def power(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] waveforms -> [B, 1, n_mels, frames] mel power."""
        spec = torch.stft(wav, self.settings.n_fft, self.settings.hop_length,
                          window=self.window, center=True, pad_mode="reflect",
                          return_complex=True).abs().pow(2)  # [B, bins, frames]
        return torch.matmul(self.filterbank.T, spec).unsqueeze(1)

    def compress(self, power: torch.Tensor) -> torch.Tensor:
        """``10 log10`` of the power (floored at 1e-10), at most ``top_db`` below each clip's
        peak when ``top_db`` > 0."""
        db = 10.0 * torch.log10(power.clamp(min=FLOOR))
        if self.top_db:
            peak = db.amax(dim=(-3, -2, -1), keepdim=True)
            db = torch.maximum(db, peak - self.top_db)
        return db

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths // self.settings.hop_length + 1

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        return (1, self.settings.n_mels, num_samples // self.settings.hop_length + 1)
