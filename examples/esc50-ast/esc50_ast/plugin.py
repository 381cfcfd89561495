"""esc50 hooks of this package: one model and one augmentation."""

from __future__ import annotations

import torch
from torch import nn

from esc50.core.config import TaskConfig
from esc50.core.contracts import Augmentation, check_range, uniform
from esc50.core.hookspecs import hookimpl

ESC50_PLUGIN_API = 1


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


class TimeShift(Augmentation):
    """Roll each clip in time by a random fraction of its length in [-max_shift, max_shift]."""

    name = "time_shift"
    stage = "wave"

    def __init__(self, config: TaskConfig, max_shift: float = 0.5, p: float = 0.5) -> None:
        super().__init__(p)
        check_range("max_shift", max_shift, 0.0, 1.0)
        self.max_shift = max_shift

    def forward(self, wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, length = wav.shape
        chosen = self.chosen(batch, generator)
        shifts = (uniform(-self.max_shift, self.max_shift, batch, generator) * length).long()
        shifts = (shifts * chosen).to(wav.device)
        index = (torch.arange(length, device=wav.device)[None, :] - shifts[:, None]) % length
        return wav.gather(1, index)


@hookimpl
def register_models(register):
    register(AST)


@hookimpl
def register_augmentations(register):
    register(TimeShift)
