"""Peak memory and time of scoring one long recording, streamed (`esc50 predict` now) against
reading it whole and scoring every window at once (the tool before streaming), each measurement
in its own process so each peak-RSS figure is its own.

    python benchmarks/predict_memory.py --minutes 10 60 [--whole-up-to 10]

The recording is written once per length as a 44.1 kHz stereo 16-bit WAV (noise with tones);
the model is the default CRNN with random weights at the default config (44.1 kHz, 5 s windows,
half-overlapping): memory and time do not depend on what it learned.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from esc50.core.data.audio import load_clip, read_mono
from esc50.core.training.classifier import build_classifier
from esc50.core.config import TaskConfig
from esc50.commands.predict import probabilities, windows
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.scoring import Member, Scoring
from fresh import in_fresh_process  # benchmarks/, the folder this script runs from

RATE = 44_100


def write_recording(path: Path, minutes: float, channels: int = 2) -> None:
    """A 16-bit WAV of tones in noise (stereo unless ``channels``), written a minute at a
    time (benchmarks/timeline.py writes its mono recordings with it too)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", RATE, channels, "PCM_16") as out:
        for _ in range(int(np.ceil(minutes))):
            t = np.arange(RATE * 60) / RATE
            tone = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
            out.write(np.stack([tone] * channels, 1)
                      + rng.normal(0, 0.05, (RATE * 60, channels)))


def measure(path: Path, mode: str) -> dict:
    """Seconds and peak RSS of scoring ``path`` in one way (run in its own process)."""
    torch.manual_seed(0)
    config = TaskConfig().override(num_classes=50, sample_rate=RATE, length_wav=5 * RATE)
    classifier = build_classifier(config, load_registry()).eval()
    started = time.perf_counter()
    with torch.no_grad():
        if mode == "streamed":
            scores = probabilities([Member(classifier, Scoring())], read_mono(path, RATE),
                                   config.length_wav)
        else:  # whole: the file decoded at once, every window featurized and scored at once
            wav, _ = load_clip(path, RATE)
            _, batch, lengths = zip(*windows([wav], config.length_wav))
            scores = torch.softmax(classifier(torch.stack(batch), torch.tensor(lengths)), 1).mean(0)
    return {"seconds": time.perf_counter() - started, "top": int(scores.argmax()),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[10, 60])
    parser.add_argument("--whole-up-to", type=float, default=10,
                        help="measure reading whole only for recordings up to this many minutes")
    parser.add_argument("--one", nargs=2, metavar=("FILE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one[0]), args.one[1])))
        return
    print(f"CRNN (random weights), 44.1 kHz stereo 16-bit WAV, torch threads "
          f"{torch.get_num_threads()}\n")
    print("| recording | way | seconds | peak RSS MiB | top class |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as work:
        for minutes in args.minutes:
            path = Path(work) / f"{minutes:g}min.wav"
            write_recording(path, minutes)
            modes = ["streamed"] + (["whole"] if minutes <= args.whole_up_to else [])
            for mode in modes:
                result = in_fresh_process(__file__, str(path), mode)
                print(f"| {minutes:g} min | {mode} | {result['seconds']:.1f} | "
                      f"{result['peak_rss_mib']:.0f} | {result['top']} |", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
