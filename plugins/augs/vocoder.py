"""A batched phase vocoder with one stretch rate per example: the shared engine of
``time_stretch`` and ``pitch_shift`` (librosa does the same one clip at a time). Per-example
rates may live on the host (the trainer draws them there): shapes are worked out from them
without waiting for the GPU."""

from __future__ import annotations

import math

import torch

from esc50 import to_device

N_FFT = 1024
HOP = N_FFT // 4


def stretch(wav: torch.Tensor, rates: torch.Tensor, out_length: int,
            cutoff: torch.Tensor | None = None) -> torch.Tensor:
    """Play each clip of ``wav`` [B, T] ``rates[b]`` times faster without changing its pitch;
    return ``out_length`` samples per clip (zeros after a clip that ended, cropped if longer).
    With ``cutoff`` [B] (a fraction of Nyquist per clip), the bins above it are left out of the
    resynthesis: a low-pass at the cost of one multiplication."""
    window = torch.hann_window(N_FFT, device=wav.device)
    # Zero padding at the ends, as librosa's STFT: reflected padding gave the first frame the
    # phases of a mirrored signal, which every later frame inherits, and slowed-down tones lost
    # a third to a half of their level (librosa: 0.91 of it at rate 0.8).
    spec = torch.stft(wav, N_FFT, HOP, window=window, return_complex=True,
                      pad_mode="constant")  # [B, F, T]
    bins, frames = spec.shape[1], spec.shape[2]
    magnitude_in, phase_in = spec.abs(), spec.angle()
    # Output frames that read inside the clip for some example; later ones are silence.
    rates = rates.float()
    needed = min(out_length // HOP + 1, int(((frames - 1) / rates.min()).ceil()) + 1)
    rates = to_device(rates, wav)
    positions = torch.arange(needed, device=wav.device)[None, :] * rates[:, None]  # [B, T_out]
    left = positions.floor().long().clamp(max=frames - 1)
    right = (left + 1).clamp(max=frames - 1)
    frac = (positions - positions.floor()).unsqueeze(1)  # [B, 1, T_out]
    index_left = left.unsqueeze(1).expand(-1, bins, -1)
    index_right = right.unsqueeze(1).expand(-1, bins, -1)
    magnitude = torch.lerp(magnitude_in.gather(2, index_left),
                           magnitude_in.gather(2, index_right), frac)
    magnitude *= (positions < frames - 1).unsqueeze(1)  # past the clip's end: silence
    if cutoff is not None:
        fraction = torch.linspace(0, 1, bins, device=wav.device)  # of Nyquist, per bin
        magnitude *= (fraction[None, :] <= to_device(cutoff, wav)[:, None]).unsqueeze(2)
    # Phase: start from frame 0's phase and accumulate each bin's measured phase advance.
    expected = torch.linspace(0, math.pi * HOP, bins, device=wav.device)[None, :, None]
    advance = phase_in.gather(2, index_right) - phase_in.gather(2, index_left) - expected
    advance -= 2 * math.pi * torch.round(advance / (2 * math.pi))
    advance += expected
    phase = torch.cat([phase_in[:, :, :1], advance[:, :, :-1]], dim=2).cumsum_(2)
    synthesized = needed * HOP - HOP  # istft's length for `needed` centred frames
    out = torch.istft(torch.polar(magnitude, phase), N_FFT, HOP, window=window,
                      length=min(out_length, synthesized))
    return torch.nn.functional.pad(out, (0, out_length - out.shape[1]))


def resample_linear(wav: torch.Tensor, ratios: torch.Tensor, out_length: int) -> torch.Tensor:
    """Read each clip at ``ratios[b]`` source samples per output sample (linear interpolation);
    ``out_length`` samples per clip, zeros past the source's end."""
    steps = torch.arange(out_length, device=wav.device, dtype=torch.float32)
    positions = steps[None, :] * to_device(ratios.float(), wav)[:, None]
    return read_at(wav, positions) * (positions <= wav.shape[1] - 1)


def read_at(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``x`` [B, ..., T] read at fractional ``positions`` [B, T_out] along its last axis, linearly
    interpolated between the two nearest steps (the last step repeats past the end):
    [B, ..., T_out]. Callers mask what lies past the end as their transform needs."""
    steps, out = x.shape[-1], positions.shape[1]
    left = positions.floor().long().clamp(max=steps - 1)
    right = (left + 1).clamp(max=steps - 1)
    per_example = (x.shape[0],) + (1,) * (x.dim() - 2) + (out,)  # broadcast over the middle axes

    def pick(index: torch.Tensor) -> torch.Tensor:
        return x.gather(-1, index.view(per_example).expand(*x.shape[:-1], out))

    return torch.lerp(pick(left), pick(right), (positions - positions.floor()).view(per_example))

