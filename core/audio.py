"""Decoding one audio file into a mono clip at the configured sample rate and length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from esc50.core.errors import Esc50Error

INT16_SCALE = 32768.0
SILENT_MIX = 1e-3  # a mono mix 60 dB below its channels: they cancel out


def load_clip(path: Path, sample_rate: int, length: int | None = None) -> tuple[torch.Tensor, int]:
    """Decode ``path`` (any format soundfile reads), mix to mono, resample to ``sample_rate``
    and pad with zeros or crop to ``length`` samples. Returns (float32 [length], valid samples)."""
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as exc:
        raise Esc50Error(f"{path}: cannot decode audio ({' '.join(str(exc).split())})") from exc
    wav = to_mono(data, file_rate, sample_rate, str(path))
    valid = wav.shape[0] if length is None else min(wav.shape[0], length)
    return (wav if length is None else fit_length(wav, length)), valid


def to_mono(data: np.ndarray, rate: int, sample_rate: int, source: str) -> torch.Tensor:
    """Float audio ``[samples, channels]`` at ``rate`` checked (not empty, finite, not all
    silence, channels that do not cancel out: one-line errors naming ``source``), mixed to mono,
    clipped to [-1, 1] (as the int16 cache of training clips is, so training and prediction see
    the same audio) and resampled to ``sample_rate``."""
    if data.shape[0] == 0:
        raise Esc50Error(f"{source}: the file holds no samples")
    if not np.isfinite(data).all():
        raise Esc50Error(f"{source}: the audio holds NaN or infinite samples")
    if not data.any():
        raise Esc50Error(f"{source}: the audio is all silence (every sample is zero)")
    mono = data.mean(axis=1)
    if np.abs(mono).max() < SILENT_MIX * np.abs(data).max():
        raise Esc50Error(f"{source}: the channels cancel out when mixed to mono (opposite "
                         "phase); fix the file or keep one channel")
    wav = torch.from_numpy(np.ascontiguousarray(np.clip(mono, -1.0, 1.0), dtype=np.float32))
    return AF.resample(wav, rate, sample_rate) if rate != sample_rate else wav


def fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    """The first ``length`` samples of ``wav`` [T], zero-padded at the end when shorter."""
    return wav[:length] if wav.shape[0] >= length else torch.nn.functional.pad(
        wav, (0, length - wav.shape[0]))


def to_int16(wav: torch.Tensor) -> torch.Tensor:
    """Float audio in [-1, 1] to int16 (half the memory of float32; lossless for 16-bit sources)."""
    return (wav * INT16_SCALE).round().clamp(-INT16_SCALE, INT16_SCALE - 1).to(torch.int16)


def to_float(wav: torch.Tensor) -> torch.Tensor:
    """int16 audio back to float32 in [-1, 1)."""
    return wav.to(torch.float32) / INT16_SCALE
