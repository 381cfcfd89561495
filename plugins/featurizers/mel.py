"""What the mel featurizers share: describing torchaudio's mel power stage to power-stage
augmentations."""

from __future__ import annotations

import torch
import torchaudio

from esc50.core.config import TaskConfig
from esc50.core.contracts import PowerFeaturizer


def describe_mel_power(featurizer: PowerFeaturizer, mel: torchaudio.transforms.MelSpectrogram,
                       config: TaskConfig) -> None:
    """Set a PowerFeaturizer's filterbank, STFT frequencies and window energy from torchaudio's
    MelSpectrogram (shared by the mel featurizers)."""
    featurizer.register_buffer("filterbank", mel.mel_scale.fb.clone(), persistent=False)
    featurizer.register_buffer("frequencies", torch.linspace(0, config.sample_rate / 2,
                                                             config.n_fft // 2 + 1),
                               persistent=False)
    window = torch.hann_window(config.win_length)  # torch.stft centres it in n_fft samples
    left = (config.n_fft - config.win_length) // 2
    featurizer.register_buffer("window", torch.nn.functional.pad(
        window, (left, config.n_fft - config.win_length - left)), persistent=False)
