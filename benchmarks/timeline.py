"""Labelling long recordings: how fast and in how much memory ``esc50 predict RUN FILE
--timeline`` labels a recording of N minutes, against decoding the same file alone (the floor
every labeller pays) measured in the same run; each measurement in a process of its own, so
each peak-RSS figure is its own.

    python benchmarks/timeline.py [--run RUN] [--minutes 60 180] [--hop SECONDS]

Without ``--run`` the model is the laptop recipe's network (plugins.rescnn on 64 log-mel bands
at 22.05 kHz, 5-second windows) with random weights: speed and memory do not depend on what it
learned. The recording is a 44.1 kHz mono 16-bit WAV of noise and tones, written a minute at a
time. "x real time" is the recording's duration over the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

import esc50
from esc50.commands.timeline import build_timeline
from esc50.core.config import load_config, recipe_path
from esc50.core.data.audio import read_mono
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.classifier import build_classifier
from esc50.core.training.scoring import Member, Scoring
from predict_memory import write_recording  # benchmarks/, the folder this script runs from
from fresh import in_fresh_process  # benchmarks/, the folder this script runs from

def model(run: str | None) -> tuple[list[Member], list[str], int, int]:
    """The members, class names, sample rate and window of a run, or of the laptop recipe's
    network with random weights."""
    if run:
        loaded = esc50.load(run)
        return loaded.members, loaded.class_names, loaded.sample_rate, loaded.config.length_wav
    torch.manual_seed(0)
    names = [f"class {i}" for i in range(50)]
    config = load_config(recipe_path("laptop")).for_dataset(names, 44_100, 5.0)
    classifier = build_classifier(config, load_registry()).eval()
    return [Member(classifier, Scoring())], names, config.sample_rate, config.length_wav


def measure(path: Path, mode: str, run: str | None, hop: float | None) -> dict:
    """Seconds and peak RSS of one way of going through ``path`` (in its own process)."""
    members, names, rate, window = model(run)
    started = time.perf_counter()
    windows = 0
    if mode == "decode":  # reading, mixing and resampling only
        for _ in read_mono(path, rate):
            pass
    else:
        timeline = build_timeline(members, names, read_mono(path, rate), rate, window,
                                  round(hop * rate) if hop else None)
        windows = len(timeline.windows)
    return {"seconds": time.perf_counter() - started, "windows": windows,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a run folder (default: the laptop recipe's network, "
                        "random weights)")
    parser.add_argument("--minutes", type=float, nargs="*", default=[60, 180])
    parser.add_argument("--hop", type=float, help="seconds between windows (default: half a "
                        "window)")
    parser.add_argument("--one", nargs=2, metavar=("FILE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one[0]), args.one[1], args.run, args.hop)))
        return
    print(f"model: {args.run or 'laptop recipe network, random weights'}; hop "
          f"{args.hop or 'half a window'}; torch threads {torch.get_num_threads()}\n")
    print("| recording | what | seconds | x real time | windows | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as work:
        for minutes in args.minutes:
            path = Path(work) / f"{minutes:g}min.wav"
            write_recording(path, minutes, channels=1)
            for mode in ("decode", "timeline"):
                options = (["--run", args.run] if args.run else []) + \
                    (["--hop", str(args.hop)] if args.hop else [])
                result = in_fresh_process(__file__, str(path), mode, *options)
                what = "decoding alone (reference)" if mode == "decode" else "esc50 timeline"
                print(f"| {minutes:g} min | {what} | {result['seconds']:.1f} | "
                      f"{minutes * 60 / result['seconds']:.0f} | {result['windows'] or '-'} | "
                      f"{result['peak_rss_mib']:.0f} |", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
