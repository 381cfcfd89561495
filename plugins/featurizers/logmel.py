"""The report's featurizer: a mel spectrogram followed by a log."""

from __future__ import annotations

import torch

from esc50 import PowerFeaturizer, TaskConfig, hookimpl
from esc50.plugins.featurizers.mel import HOP_LENGTH, N_FFT, N_MELS, WIN_LENGTH, MelSettings

ESC50_PLUGIN_API = 4


class LogMel(PowerFeaturizer):
    """Log mel spectrogram (the report's n_fft 1024, hop 256, 64 mel bands by default)."""

    name = "logmel"

    def __init__(self, config: TaskConfig, n_fft: int = N_FFT, win_length: int = WIN_LENGTH,
                 hop_length: int = HOP_LENGTH, n_mels: int = N_MELS, center: bool = True,
                 floor: float = 1e-9) -> None:
        """Options:
        n_fft: STFT size in samples
        win_length: Hann window length in samples (at most n_fft)
        hop_length: samples between frames
        n_mels: mel bands
        center: pad each clip by n_fft // 2 at both ends, as torch.stft does
        floor: the smallest power before the log
        """
        super().__init__()
        self.settings = MelSettings(config.sample_rate, n_fft, win_length, hop_length,
                                    n_mels).checked(config.length_wav)
        self.center, self.floor = center, floor
        self.mel = self.settings.spectrogram(center)
        self.settings.describe(self, self.mel.mel_scale.fb)

    def power(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] waveforms -> [B, 1, n_mels, frames] mel power."""
        return self.mel(wav).unsqueeze(1)

    def compress(self, power: torch.Tensor) -> torch.Tensor:
        """Natural log of the power, floored at ``floor``."""
        return torch.log(power.clamp(min=self.floor))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        hop = self.settings.hop_length
        if self.center:
            return lengths // hop + 1
        return ((lengths - self.settings.n_fft) // hop + 1).clamp(min=1)

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        frames = int(self.frame_lengths(torch.tensor(num_samples)))
        return (1, self.settings.n_mels, frames)


@hookimpl
def register_featurizers(register):
    register(LogMel)
