"""esc50 on a CPU that other work shares: the seconds of ``esc50 analyze`` of clips of a dataset
(or of a training epoch, ``--train``) alone, beside one busy process (a Python loop, one core's
worth of other work) and two at once (as two shards, or two runs, on one machine), for each way
torch's OpenMP threads may wait between parallel regions, libgomp's own default the reference,
all timed in the same run.

    python benchmarks/busy_cpu.py --data ESC-50 [--model esc50-rescnn] [--clips 100]
        [--train] [--spins 10000] [--repeats 1]

torch's CPU kernels run on libgomp's threads; a thread that finishes its part of an operation
waits for the others, spinning ``GOMP_SPINCOUNT`` times before it sleeps (300 000 where
``OMP_WAIT_POLICY`` is not set). Each setting runs in its own processes with
``GOMP_SPINCOUNT`` (or ``OMP_WAIT_POLICY=PASSIVE``: no spinning) set; the seconds are the
analysis's own (``summary.json``'s ``this_run.wall_seconds``: the model loaded, the start-up
left out) or, with ``--train``, the second epoch's of a 2-epoch run of the laptop recipe on the
dataset (``history.csv``), the median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from esc50.core.cpu_threads import WAIT_VARIABLES
from esc50.core.data.clips import named_as_audio

LIBGOMP_DEFAULT = {"GOMP_SPINCOUNT": "300000"}  # libgomp's own, where OMP_WAIT_POLICY is unset


def started(arguments: list[str], variables: dict[str, str]) -> subprocess.Popen:
    """``esc50 ARGUMENTS`` in a process of its own, with ``variables`` set (and neither OpenMP
    wait variable inherited)."""
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    return subprocess.Popen([sys.executable, "-m", "esc50", *arguments, "--no-progress"],
                            env={**env, **variables}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def seconds_of(process: subprocess.Popen, out: Path) -> float:
    """The seconds timed (the analysis's own, or the last epoch's), once ``process`` (writing
    into ``out``) has ended."""
    _, errors = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"esc50 failed: {errors.strip().splitlines()[-1]}")
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())["this_run"]["wall_seconds"]
    history = next(out.glob("*/history.csv")).read_text().splitlines()
    return float(dict(zip(history[0].split(","), history[-1].split(",")))["seconds"])


def timed(job: list[str], work: Path, variables: dict[str, str], scenario: str) -> list[float]:
    """Seconds of each ``esc50 JOB --out FOLDER`` in ``scenario``: "alone", "busy" (beside a
    Python loop) or "pair" (two at once, into two folders)."""
    outs = [Path(tempfile.mkdtemp(dir=work)) / "out" for _ in range(2 if scenario == "pair" else 1)]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) \
        if scenario == "busy" else None
    try:
        running = [started([*job, str(out)], variables) for out in outs]
        return [seconds_of(process, out) for process, out in zip(running, outs)]
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a dataset folder with an audio/ folder")
    parser.add_argument("--model", default="esc50-rescnn")
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--train", action="store_true", help="time a training epoch instead")
    parser.add_argument("--spins", type=int, nargs="*", default=[10000],
                        help="GOMP_SPINCOUNT values timed beside libgomp's default")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    clips = sorted(p for p in (Path(args.data) / "audio").iterdir() if named_as_audio(p))
    settings = {f"libgomp's default (GOMP_SPINCOUNT={LIBGOMP_DEFAULT['GOMP_SPINCOUNT']})":
                LIBGOMP_DEFAULT,
                **{f"GOMP_SPINCOUNT={n}": {"GOMP_SPINCOUNT": str(n)} for n in args.spins},
                "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}
    what = "the second epoch of esc50 train --recipe laptop" if args.train else \
        f"esc50 analyze of {len(clips[:args.clips])} clips with {args.model}"
    print(f"{args.data}, {os.cpu_count()} CPUs; seconds of {what}, median of {args.repeats}\n")
    print("| setting | alone | beside a busy process | two at once (each) |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as work:
        tree = Path(work) / "tree"
        tree.mkdir()
        for clip in clips[:args.clips]:
            (tree / clip.name).symlink_to(clip.resolve())
        job = ["train", "--recipe", "laptop", "--data", args.data, "--epochs", "2",
               "--output-dir"] if args.train else ["analyze", args.model, str(tree), "--out"]
        for label, variables in settings.items():
            cells = []
            for scenario in ("alone", "busy", "pair"):
                runs = [timed(job, Path(work), variables, scenario)
                        for _ in range(args.repeats)]
                cells.append(" / ".join(f"{statistics.median(times):.1f}"
                                        for times in zip(*runs)))
            print(f"| {label} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
