"""esc50 hooks of this package: a model, a featurizer and a dataset."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from esc50 import (Clip, ClipTable, DatasetReader, Esc50Error, PowerFeaturizer, TaskConfig,
                   hookimpl, list_files)

ESC50_PLUGIN_API = 4


class AST(nn.Module):
    """Small Audio Spectrogram Transformer: 16x16 patches, transformer encoder, class token."""

    name = "ast"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int], dim: int = 192,
                 depth: int = 4, heads: int = 3, patch: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        channels, bins, frames = input_shape
        if bins < patch:
            raise ValueError(f"{bins} feature bins are fewer than the patch size {patch}")
        self.patch = patch
        self.embed = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        self.freq_patches = bins // patch
        self.pos_time = nn.Parameter(torch.zeros(1, dim, 1, max(frames // patch, 1)))
        self.pos_freq = nn.Parameter(torch.zeros(1, dim, self.freq_patches, 1))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.pos_time, std=0.02)
        nn.init.trunc_normal_(self.pos_freq, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, config.num_classes)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] < self.patch:
            features = nn.functional.pad(features, (0, self.patch - features.shape[-1]))
        x = self.embed(features)  # [B, dim, Fp, Tp]
        steps = x.shape[-1]
        pos_time = nn.functional.interpolate(self.pos_time, size=(1, steps), mode="bilinear",
                                             align_corners=False)
        x = (x + pos_time + self.pos_freq).flatten(2).transpose(1, 2)  # [B, Fp * Tp, dim]
        valid = (frame_lengths // self.patch).clamp(1, steps)
        padded_steps = torch.arange(steps, device=x.device)[None, :] >= valid[:, None]
        padding = torch.cat([torch.zeros_like(padded_steps[:, :1]),
                             padded_steps.repeat(1, self.freq_patches)], dim=1)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.encoder(x, src_key_padding_mask=padding)
        return self.head(self.norm(x[:, 0]))


class LogSpectrogram(PowerFeaturizer):
    """Log power of the linear-frequency STFT (no mel bands), with a power stage."""

    name = "logspec"

    def __init__(self, config: TaskConfig, n_fft: int = 1024, win_length: int = 1024,
                 hop_length: int = 256, floor: float = 1e-10) -> None:
        """Options:
        n_fft: STFT size in samples
        win_length: Hann window length in samples (at most n_fft)
        hop_length: samples between frames
        floor: the smallest power before the log
        """
        super().__init__()
        if not 0 < win_length <= n_fft or hop_length <= 0:
            raise ValueError(f"need 0 < win_length={win_length} <= n_fft={n_fft} and a "
                             f"positive hop_length={hop_length}")
        self.n_fft, self.hop_length, self.floor = n_fft, hop_length, floor
        self.min_samples = win_length
        window = torch.hann_window(win_length)
        left = (n_fft - win_length) // 2
        self.register_buffer("window", nn.functional.pad(
            window, (left, n_fft - win_length - left)), persistent=False)
        bins = n_fft // 2 + 1
        # Each feature band is one STFT bin, so the filterbank is the identity.
        self.register_buffer("filterbank", torch.eye(bins), persistent=False)
        self.register_buffer("frequencies", torch.linspace(0, config.sample_rate / 2, bins),
                             persistent=False)

    def power(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav, self.n_fft, self.hop_length, window=self.window,
                          return_complex=True)
        return spec.abs().pow(2).unsqueeze(1)

    def compress(self, power: torch.Tensor) -> torch.Tensor:
        return torch.log(power.clamp(min=self.floor))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths // self.hop_length + 1

    def output_shape(self, num_samples: int) -> tuple[int, int, int]:
        return (1, self.n_fft // 2 + 1, num_samples // self.hop_length + 1)


class Filenames(DatasetReader):
    """One folder of clips named <label><separator><anything>.<ext>: the label is the class."""

    name = "filenames"

    def __init__(self, config: TaskConfig, separator: str = "_", sample_rate: int = 16_000,
                 clip_seconds: float = 1.0) -> None:
        self.separator, self.sample_rate, self.clip_seconds = separator, sample_rate, clip_seconds

    def read(self, root: Path) -> ClipTable:
        audio, other, hidden = list_files(root)
        unlabelled = [p for p in audio if self.separator not in p.stem]
        if unlabelled:
            raise Esc50Error(f"{unlabelled[0]}: no {self.separator!r} in the name, so no label")
        labels = [p.stem.split(self.separator, 1)[0] for p in audio]
        names = sorted(set(labels))
        clips = [Clip(p, 0, names.index(label), p.stem) for p, label in zip(audio, labels)]
        return ClipTable(root, clips, names, self.sample_rate, self.clip_seconds,
                         [f"{p.name} (not audio)" for p in other], hidden)


@hookimpl
def register_models(register):
    register(AST)


@hookimpl
def register_datasets(register):
    register(Filenames)


@hookimpl
def register_featurizers(register):
    register(LogSpectrogram)
