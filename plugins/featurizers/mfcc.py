"""MFCCs: the DCT (type II, orthonormal) of the log mel spectrogram in dB, as librosa computes
them (``librosa.feature.mfcc`` on ``power_to_db`` of an HTK mel spectrogram)."""

from __future__ import annotations

import torch
import torchaudio

from esc50 import PowerFeaturizer, TaskConfig, hookimpl
from esc50.plugins.featurizers.mel import HOP_LENGTH, N_FFT, N_MELS, WIN_LENGTH, MelSettings

ESC50_PLUGIN_API = 4


class MFCC(PowerFeaturizer):
    """Mel-frequency cepstral coefficients (n_mfcc of them) of a log mel spectrogram."""

    name = "mfcc"

    def __init__(self, config: TaskConfig, n_mfcc: int = 40, top_db: float = 80.0,
                 n_fft: int = N_FFT, win_length: int = WIN_LENGTH, hop_length: int = HOP_LENGTH,
                 n_mels: int = N_MELS) -> None:
        """Options:
        n_mfcc: coefficients kept (at most n_mels)
        top_db: dynamic range kept below each clip's peak, in dB
        n_fft: STFT size in samples
        win_length: Hann window length in samples (at most n_fft)
        hop_length: samples between frames
        n_mels: mel bands
        """
        super().__init__()
        settings = MelSettings(config.sample_rate, n_fft, win_length, hop_length,
                               n_mels).checked(config.length_wav)
        if not 0 < n_mfcc <= n_mels:
            raise ValueError(f"n_mfcc={n_mfcc} must be between 1 and n_mels={n_mels}")
        self.n_mfcc, self.hop_length = n_mfcc, hop_length
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=config.sample_rate, n_mfcc=n_mfcc, norm="ortho", log_mels=False,
            melkwargs={"n_fft": n_fft, "win_length": win_length, "hop_length": hop_length,
                       "n_mels": n_mels, "center": True, "window_fn": torch.hann_window})
        self.mfcc.amplitude_to_DB.top_db = top_db
        settings.describe(self, self.mfcc.MelSpectrogram.mel_scale.fb)

    def power(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] waveforms -> [B, 1, n_mels, frames] mel power."""
        return self.mfcc.MelSpectrogram(wav).unsqueeze(1)

    def compress(self, power: torch.Tensor) -> torch.Tensor:
        """dB (``top_db`` below each clip's own peak), then the DCT: [B, 1, n_mfcc, frames]."""
        db = self.mfcc.amplitude_to_DB(power)  # 4-D input: the peak is taken per clip
        return torch.matmul(db.transpose(-1, -2), self.mfcc.dct_mat).transpose(-1, -2)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths // self.hop_length + 1

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        return (1, self.n_mfcc, num_samples // self.hop_length + 1)


@hookimpl
def register_featurizers(register):
    register(MFCC)
