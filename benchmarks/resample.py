"""Resampling: esc50's polyphase sinc resampler (``core/data/audio.py``, the one behind every
decoded file) against ``torchaudio.functional.resample``, whose filter it uses, on the same 30 s
of noise (one read block) at each rate, in the same run; the median of 9 calls each.

    python benchmarks/resample.py [--target 22050]
"""

from __future__ import annotations

import argparse

import torch
import torchaudio.functional as AF

from esc50.core.data.audio import BlockResampler
from timing import median_seconds  # benchmarks/, the folder this script runs from

RATES = (8_000, 16_000, 32_000, 44_100, 48_000, 96_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=int, default=22_050)
    args = parser.parse_args()
    print(f"30 s of noise to {args.target} Hz; {torch.get_num_threads()} threads\n")
    print("| from Hz | torchaudio ms | esc50 ms | speed-up | largest difference |")
    print("|---:|---:|---:|---:|---:|")
    for rate in RATES:
        if rate == args.target:
            continue
        wav = torch.rand(30 * rate, generator=torch.Generator().manual_seed(0)) - 0.5
        resampler = BlockResampler(rate, args.target)
        reference = 1e3 * median_seconds(lambda: AF.resample(wav, resampler.orig, resampler.new))
        ours = 1e3 * median_seconds(lambda: resampler.resample(wav))
        gap = float((AF.resample(wav, resampler.orig, resampler.new)
                     - resampler.resample(wav)).abs().max())
        print(f"| {rate} | {reference:.1f} | {ours:.1f} | {reference / ours:.2f}x | {gap:.1e} |")


if __name__ == "__main__":
    main()
