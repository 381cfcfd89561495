"""Clips per second of each augmentation on a batch of real 5 s ESC-50 clips, esc50's batched
plugins (the waveform ones, and their power-spectrogram twins on the batch's cached mel power)
against the report's per-clip librosa/torch calls and against audiomentations, all measured in
this one run on the same clips.

    pip install audiomentations     # optional: its column is left out when it is missing
    python benchmarks/augs.py --data ../shared/datasets/esc50 [--device cuda]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import soundfile as sf
import torch
import torchaudio

from esc50.core.data.audio import to_float
from esc50.core.training.stages import AugmentationPipeline
from esc50.core.config import TaskConfig
from esc50.core.data.audiocache import AudioCache
from esc50.core.data.clips import find_clips
from esc50.core.plugin_api.registry import load_registry

SR = 44_100
NOISE_SNR_DB = 1.0  # the report's code fixes the background-noise SNR at 1 dB

# name: (esc50 spec, the report's setting) -- the report's values in esc50's parameters.
OURS = {
    "gaussian": "gaussian:min_std=0.01,max_std=0.01,p=1",
    "time_stretch": "time_stretch:min_rate=2.0,max_rate=2.0,p=1",
    "pitch_shift": "pitch_shift:min_semitones=-5,max_semitones=-5,p=1",
    "volume": "volume:min_gain_db=-12.04,max_gain_db=-12.04,p=1",
    "noise": "noise:path={noise},min_snr_db=1,max_snr_db=1,p=1",
}


def report_ops(noises: list[np.ndarray]) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The report's per-clip augmentations, as its AugsCreation wrote them."""
    vol = torchaudio.transforms.Vol(0.25)
    normal = torch.distributions.Normal(0.0, 0.01)

    def background(x: np.ndarray) -> np.ndarray:
        noise = torch.from_numpy(noises[np.random.randint(len(noises))])
        audio = torch.from_numpy(x)
        alpha = audio.norm() / noise.norm() * 10 ** (-NOISE_SNR_DB / 20)
        start = np.random.randint(max(noise.shape[0] - audio.shape[0] - 1, 1))
        return (audio + alpha * noise[start:start + audio.shape[0]]).clamp(-1, 1).numpy()

    return {
        "gaussian": lambda x: (torch.from_numpy(x) + normal.sample(x.shape)).clamp(-1, 1).numpy(),
        "time_stretch": lambda x: librosa.effects.time_stretch(x, rate=2.0),
        "pitch_shift": lambda x: librosa.effects.pitch_shift(x, sr=SR, n_steps=-5),
        "volume": lambda x: vol(torch.from_numpy(x)).numpy(),
        "noise": background,
    }


def audiomentations_ops(noise_dir: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The same settings in audiomentations, one clip at a time (its way of working)."""
    import audiomentations as A

    transforms = {
        "gaussian": A.AddGaussianNoise(min_amplitude=0.01, max_amplitude=0.01, p=1.0),
        "time_stretch": A.TimeStretch(min_rate=2.0, max_rate=2.0, p=1.0),
        "pitch_shift": A.PitchShift(min_semitones=-5, max_semitones=-5, p=1.0),
        "volume": A.Gain(min_gain_db=-12.04, max_gain_db=-12.04, p=1.0),
        "noise": A.AddBackgroundNoise(sounds_path=str(noise_dir), min_snr_db=NOISE_SNR_DB,
                                      max_snr_db=NOISE_SNR_DB, p=1.0),
    }
    return {name: (lambda t: lambda x: t(samples=x, sample_rate=SR))(t)
            for name, t in transforms.items()}


def per_clip_rate(op: Callable[[np.ndarray], np.ndarray], clips: np.ndarray) -> float:
    op(clips[0])  # warm-up (librosa's first call compiles with numba)
    started = time.perf_counter()
    for clip in clips:
        op(clip)
    return len(clips) / (time.perf_counter() - started)


def batched_rate(aug: Callable[[torch.Tensor, torch.Generator], torch.Tensor], batch: torch.Tensor,
                 generator: torch.Generator, repeats: int = 3) -> float:
    aug(batch, generator)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if batch.is_cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        aug(batch, generator)
        if batch.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return batch.shape[0] / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--clips", type=int, default=128, help="batch size (real 5 s clips)")
    parser.add_argument("--reference-clips", type=int, default=128,
                        help="clips for the per-clip references (fewer: a faster run)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    config = TaskConfig().override(data=args.data, num_classes=50, sample_rate=44_100, length_wav=220_500)
    table = find_clips(Path(args.data), config)
    clips = table.clips[: args.clips + 4]
    cache = AudioCache(clips, config)
    waves = to_float(cache.waves)
    batch, noise_clips = waves[: args.clips], waves[args.clips:]
    reference = batch[: args.reference_clips].numpy()
    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(0)
    np.random.seed(0)
    registry = load_registry()

    with tempfile.TemporaryDirectory() as noise_dir:
        for i, noise in enumerate(noise_clips):  # 4 other ESC-50 clips as background noise
            sf.write(Path(noise_dir) / f"noise{i}.wav", noise.numpy(), SR)
        ours = {name: registry.create("augmentation", spec.format(noise=noise_dir), config)
                for name, spec in OURS.items()}
        featurizer = registry.create("featurizer", config.featurizer, config).to(device)
        spectral = {name: registry.create("augmentation", f"spec_{spec.format(noise=noise_dir)}",
                                          config).to(device) for name, spec in OURS.items()}
        for aug in spectral.values():
            aug.attach(featurizer)
        report = report_ops([n.numpy() for n in noise_clips])
        try:
            others = audiomentations_ops(Path(noise_dir))
        except ImportError:
            others = {}
        print(f"{len(batch)} real 5 s clips at 44.1 kHz on {device}; per-clip references on "
              f"{len(reference)} clips; torch threads {torch.get_num_threads()}\n")
        print("| augmentation | esc50 waveform (batched) clips/s | esc50 power spectrogram "
              "(batched) clips/s | report per-clip clips/s | audiomentations clips/s | "
              "waveform vs report | waveform vs audiomentations | power vs report | "
              "power vs audiomentations |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        device_batch = batch.to(device)
        with torch.no_grad():
            power_batch = featurizer.power(device_batch)
        for name, aug in ours.items():
            ours_rate = batched_rate(aug.to(device), device_batch, generator)
            power_rate = batched_rate(spectral[name], power_batch, generator)
            report_rate = per_clip_rate(report[name], reference)
            other_rate = per_clip_rate(others[name], reference) if others else float("nan")
            print(f"| {name} | {ours_rate:,.0f} | {power_rate:,.0f} | {report_rate:,.1f} | "
                  f"{other_rate:,.1f} | {ours_rate / report_rate:.1f}x | "
                  f"{ours_rate / other_rate:.1f}x | {power_rate / report_rate:.1f}x | "
                  f"{power_rate / other_rate:.1f}x |", flush=True)

        # The report's whole policy: one of (identity + the five) drawn per clip.
        ops = [lambda x: x, *report.values()]
        report_rate = per_clip_rate(lambda x: ops[np.random.randint(len(ops))](x), reference)
        rates = []
        for stage, augs, x in (("wave", ours, device_batch), ("power", spectral, power_batch)):
            pipeline = AugmentationPipeline(list(augs.values()), "one-of")
            lengths = torch.full((x.shape[0],), x.shape[-1], device=x.device)
            rates.append(batched_rate(lambda x, g: pipeline.transform(stage, x, lengths, g)[0],
                                      x, generator))
        print(f"| report's policy (one of identity + 5) | {rates[0]:,.0f} | {rates[1]:,.0f} | "
              f"{report_rate:,.1f} | - | {rates[0] / report_rate:.1f}x | - | "
              f"{rates[1] / report_rate:.1f}x | - |")


if __name__ == "__main__":
    main()
