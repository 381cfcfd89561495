"""The report's featurizer: a mel spectrogram followed by a log."""

from __future__ import annotations

import torch
import torchaudio

from esc50.core.config import TaskConfig
from esc50.core.contracts import PowerFeaturizer
from esc50.core.hookspecs import hookimpl
from esc50.plugins.featurizers.mel import describe_mel_power


class LogMel(PowerFeaturizer):
    """Log mel spectrogram (n_fft, win_length, hop_length, n_mels from the config)."""

    name = "logmel"

    def __init__(self, config: TaskConfig, center: bool = True, floor: float = 1e-9) -> None:
        """Options:
        center: pad each clip by n_fft // 2 at both ends, as torch.stft does
        floor: the smallest power before the log
        """
        super().__init__()
        self.center, self.floor = center, floor
        self.n_fft, self.hop_length, self.n_mels = config.n_fft, config.hop_length, config.n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.win_length,
            hop_length=config.hop_length, n_mels=config.n_mels, center=center,
            window_fn=torch.hann_window)
        describe_mel_power(self, self.mel, config)

    def power(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] waveforms -> [B, 1, n_mels, frames] mel power."""
        return self.mel(wav).unsqueeze(1)

    def compress(self, power: torch.Tensor) -> torch.Tensor:
        """Natural log of the power, floored at ``floor``."""
        return torch.log(power.clamp(min=self.floor))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        if self.center:
            return lengths // self.hop_length + 1
        return ((lengths - self.n_fft) // self.hop_length + 1).clamp(min=1)

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        frames = int(self.frame_lengths(torch.tensor(num_samples)))
        return (1, self.n_mels, frames)


@hookimpl
def register_featurizers(register):
    register(LogMel)
