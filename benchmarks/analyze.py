"""Labelling a folder tree: how fast ``esc50 analyze`` labels a tree of recordings, against
decoding the same files alone (the floor every labeller pays) and against scoring every window
alone (``--each-window``, what ``predict --timeline`` does), measured in the same run, each
measurement in a process of its own (its peak RSS its own; for worker processes, the largest
worker's).

    python benchmarks/analyze.py MODEL [--recordings 12] [--minutes 5] [--jobs 1 2]
        [--float32 | --avx2 | --sse4]

MODEL is a run folder, a cross-validation folder or a trained model's name (``esc50-rescnn``).
The tree holds RECORDINGS mono 16-bit WAV files at 44.1 kHz of tones in noise, MINUTES long each,
in two folders. ``--float32`` scores in float32 even where the CPU has bf16 instructions
(``ESC50_CPU_BF16=0``). ``--avx2`` also keeps torch, oneDNN and MKL to AVX2 instructions
(``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``):
the instructions of a CPU without AVX-512 and bf16, on this CPU's cores, caches and clock.
``--sse4`` keeps them to SSE4 (torch's ``default`` kernels, ``SSE41``, ``SSE4_2``): those of a
CPU without AVX at all. "x real time" is the tree's duration over the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from esc50.commands.analyze.run import analyze
from esc50.core.data.audio import read_mono
from esc50.core.training.device import NO_BF16_VARIABLE
from fresh import in_fresh_process  # benchmarks/, the folder this script runs from
from predict_memory import write_recording  # benchmarks/, the folder this script runs from

# The variables that keep torch, oneDNN and MKL to a narrower instruction set than the CPU's.
INSTRUCTIONS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "sse4": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
             "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def measure(model: str, tree: Path, mode: str, jobs: int) -> dict:
    """Seconds and peak RSS of one way of going through ``tree`` (in its own process)."""
    started = time.perf_counter()
    if mode == "decode":
        for path in sorted(tree.rglob("*.wav")):
            for _ in read_mono(path, 22_050):
                pass
    else:
        with tempfile.TemporaryDirectory() as out:
            analyze(model, tree, out, jobs=jobs, each_window=mode == "each-window",
                    log=lambda _: None, progress=False)
    return {"seconds": time.perf_counter() - started,
            "peak_rss_mib": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--recordings", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--jobs", type=int, nargs="*", default=[1, 2])
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--float32", action="store_true")
    for name in INSTRUCTIONS:
        kind.add_argument(f"--{name}", dest="instructions", action="store_const", const=name)
    parser.add_argument("--one", nargs=3, metavar=("TREE", "MODE", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.model, Path(args.one[0]), args.one[1], int(args.one[2]))))
        return
    hours = args.recordings * args.minutes / 60
    env = dict(os.environ)
    numerics = "as recorded (bf16 where the CPU has it)"
    if args.float32 or args.instructions:
        env[NO_BF16_VARIABLE] = "0"
        numerics = "float32 (bf16 off)"
    if args.instructions:
        env.update(INSTRUCTIONS[args.instructions])
        numerics += f", {args.instructions.upper()} instructions only"
    print(f"model: {args.model}; {args.recordings} recordings of {args.minutes:g} min "
          f"({hours:.2f} h); numerics {numerics}; {os.cpu_count()} cores\n")
    print("| what | seconds | x real time | peak RSS MiB (per process) |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as work:
        tree = Path(work) / "tree"
        for k in range(args.recordings):
            path = tree / f"site{k % 2 + 1}" / f"rec{k:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_recording(path, args.minutes, channels=1)
        runs = [("decode", 1, "decoding alone (reference)"),
                ("each-window", 1, "esc50 analyze --each-window --jobs 1 (reference)"),
                *(("analyze", j, f"esc50 analyze --jobs {j}") for j in args.jobs)]
        for mode, jobs, what in runs:
            result = in_fresh_process(__file__, str(tree), mode, str(jobs), args.model, env=env)
            print(f"| {what} | {result['seconds']:.1f} | {hours * 3600 / result['seconds']:.0f} "
                  f"| {result['peak_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
