"""Background noise mixed in at a random SNR (the report's sixth augmentation, which its code
never reached). Noise comes from a folder of recordings, or is generated coloured noise."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from esc50 import (Augmentation, Esc50Error, TaskConfig, check_min_max, hookimpl, list_files,
                   to_device, uniform)
from esc50.core.data.audio import load_clip

ESC50_PLUGIN_API = 4

EPS = 1e-12


class BackgroundNoise(Augmentation):
    """Add background noise at an SNR drawn from [min_snr_db, max_snr_db] (folder or coloured)."""

    name = "noise"
    stage = "wave"

    def __init__(self, config: TaskConfig, path: str | None = None, min_snr_db: float = 0.0,
                 max_snr_db: float = 40.0, min_f_decay: float = -6.0, max_f_decay: float = 0.0,
                 p: float = 0.5) -> None:
        """Options:
        path: a folder of noise recordings (the report's path2noise); none: coloured noise
        whose power falls by a slope drawn per example from [min_f_decay, max_f_decay] dB per
        octave
        """
        super().__init__(p)
        check_min_max("snr_db", min_snr_db, max_snr_db)
        check_min_max("f_decay", min_f_decay, max_f_decay, (-12.0, 12.0))
        self.path, self.snr_db, self.f_decay = path, (min_snr_db, max_snr_db), \
            (min_f_decay, max_f_decay)
        self.noises = _load_noise_folder(Path(path), config.sample_rate) if path else []
        self.noises_by_device: dict[torch.device, list[torch.Tensor]] = {}

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The SNR and slope per example; with recordings, which one (``pick``) and where
        (``start``), each as a fraction in [0, 1)."""
        draws = {"snr_db": uniform(*self.snr_db, batch_size, generator),
                 "f_decay": uniform(*self.f_decay, batch_size, generator)}
        if self.path:
            draws["pick"] = uniform(0.0, 1.0, batch_size, generator)
            draws["start"] = uniform(0.0, 1.0, batch_size, generator)
        return draws

    def apply(self, wav: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        batch, length = wav.shape
        if self.noises:
            if wav.device not in self.noises_by_device:  # copied once to where clips are
                self.noises_by_device[wav.device] = [n.to(wav.device) for n in self.noises]
            noise = noise_windows(self.noises_by_device[wav.device], params, length)
        else:  # white noise for every example (the draws of one do not depend on which others
            # were chosen), coloured for the chosen ones only: the others add none of it
            noise = torch.randn(batch, length, generator=generator, device=generator.device)
            rows = chosen.nonzero().flatten()
            if len(rows):  # (an FFT of no rows is an error)
                f_decay = params["f_decay"][rows]
                rows = to_device(rows, noise)
                noise[rows] = coloured_noise(noise[rows], f_decay)
            noise = noise.to(wav.device)
        snr_db = to_device(params["snr_db"], wav)
        signal_rms = torch.linalg.vector_norm(wav, dim=1) / length ** 0.5
        noise_rms = (torch.linalg.vector_norm(noise, dim=1) / length ** 0.5).clamp(min=EPS)
        alpha = signal_rms / noise_rms * torch.pow(10.0, -snr_db / 20) * to_device(chosen, wav)
        # In place on the noise tensor (ours): alpha = 0 leaves an unchosen clip exactly as it
        # was, since clips are already within [-1, 1].
        return noise.mul_(alpha[:, None]).add_(wav).clamp_(-1.0, 1.0)


def noise_windows(recordings: list[torch.Tensor], params: dict[str, torch.Tensor],
                  length: int) -> torch.Tensor:
    """A window of ``length`` steps of the last axis of a recording per example (looped when the
    recording is shorter), stacked: [batch, ..., length]. The recording and the window's start
    are the fractions ``params["pick"]`` and ``params["start"]`` of the choices."""
    windows = []
    for pick, start in zip(params["pick"].tolist(), params["start"].tolist()):
        noise = recordings[min(int(pick * len(recordings)), len(recordings) - 1)]
        if noise.shape[-1] < length:
            noise = noise.repeat(*[1] * (noise.dim() - 1), math.ceil(length / noise.shape[-1]))
        offset = int(start * (noise.shape[-1] - length + 1))
        windows.append(noise[..., offset:offset + length])
    return torch.stack(windows)


def coloured_noise(white: torch.Tensor, f_decay_db: torch.Tensor) -> torch.Tensor:
    """White noise [B, T] coloured so that its power falls by ``f_decay_db`` dB per octave (0:
    white, -3.01: pink, -6.02: brown), one slope per example; in the frequency domain."""
    length = white.shape[1]
    spectrum = torch.fft.rfft(white, dim=1)
    gain = colour_gain(torch.fft.rfftfreq(length, device=white.device), f_decay_db)
    return torch.fft.irfft(spectrum * gain, n=length, dim=1)


def colour_gain(freqs: torch.Tensor, f_decay_db: torch.Tensor) -> torch.Tensor:
    """Amplitude gain [B, len(freqs)] at ``freqs`` (any unit, DC first) under which power falls
    by ``f_decay_db[b]`` dB per octave."""
    freqs = freqs.clone()
    freqs[0] = freqs[1]  # avoid 0 ** negative at DC
    exponent = to_device(f_decay_db, freqs) / (20 * math.log10(2))  # amplitude slope per octave
    return freqs[None, :].pow(exponent[:, None])


def _load_noise_folder(folder: Path, sample_rate: int) -> list[torch.Tensor]:
    if not folder.is_dir():
        raise Esc50Error(f"noise folder {folder} does not exist")
    files = list_files(folder, recursive=True)[0]
    if not files:
        raise Esc50Error(f"noise folder {folder} holds no audio files")
    return [load_clip(f, sample_rate)[0] for f in files]  # refuses silent recordings too


@hookimpl
def register_augmentations(register):
    register(BackgroundNoise)
