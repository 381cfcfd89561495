"""The Audio Spectrogram Transformer's input: Kaldi-style log mel filterbanks, as the Hugging
Face ``ASTFeatureExtractor`` computes them, so that AST checkpoints see the features they know.

Sources of each choice (Gong, Chung and Glass, "AST: Audio Spectrogram Transformer",
Interspeech 2021; ``transformers``' ``ASTFeatureExtractor``):
- ``torchaudio.compliance.kaldi.fbank`` with its defaults and a Hann window: 25 ms frames every
  10 ms at 16 kHz (no edge padding), DC offset removed, pre-emphasis 0.97, a 512-point FFT,
  128 Kaldi mel bands from 20 Hz, the log of the power floored at float32's epsilon.
- Each clip's filterbank is zero-padded or cut to ``max_length`` frames (the checkpoint's
  positional embeddings fix it: 1024 for the AudioSet models), then normalized with the AudioSet
  mean and twice its standard deviation (-4.2677393, 4.5689974).
- Computed clip by clip (Kaldi's routine takes one waveform), on the clip as the trainer pads it
  to ``length_wav``; set ``normalize = false`` in the run, as the features are normalized here.
"""

from __future__ import annotations

import torch
from torchaudio.compliance import kaldi

from esc50 import Featurizer, TaskConfig, hookimpl

ESC50_PLUGIN_API = 4

WINDOW, HOP = 400, 160  # 25 ms and 10 ms at 16 kHz


class ASTFbank(Featurizer):
    """Kaldi log mel filterbanks padded to max_length frames and normalized, as AST expects."""

    name = "ast_fbank"

    def __init__(self, config: TaskConfig, max_length: int = 1024, n_mels: int = 128,
                 mean: float = -4.2677393, std: float = 4.5689974) -> None:
        """Options:
        max_length: frames every clip is padded or cut to (the checkpoint's max_length)
        n_mels: Kaldi mel bands (the checkpoint's num_mel_bins)
        mean: subtracted from the log filterbank (AudioSet's)
        std: half the divisor after the mean (AudioSet's)
        """
        super().__init__()
        if config.sample_rate != 16000:
            raise ValueError(f"AST's filterbanks are defined at 16 kHz, not sample_rate="
                             f"{config.sample_rate}: --set sample_rate=16000")
        if max_length <= 0 or n_mels <= 0 or std <= 0:
            raise ValueError(f"need positive max_length={max_length}, n_mels={n_mels}, std={std}")
        self.max_length, self.n_mels, self.mean, self.std = max_length, n_mels, mean, std
        self.min_samples = WINDOW

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] waveforms -> [B, 1, n_mels, max_length] normalized log filterbanks."""
        banks = []
        for clip in wav.float():
            bank = kaldi.fbank(clip[None], sample_frequency=16000, window_type="hanning",
                               num_mel_bins=self.n_mels)[: self.max_length]  # [frames, bands]
            banks.append(torch.nn.functional.pad(bank, (0, 0, 0, self.max_length - len(bank))))
        features = (torch.stack(banks) - self.mean) / (2 * self.std)
        return features.transpose(1, 2).unsqueeze(1)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return ((lengths - WINDOW) // HOP + 1).clamp(1, self.max_length)

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        return (1, self.n_mels, self.max_length)


@hookimpl
def register_featurizers(register):
    register(ASTFbank)
