"""Windows scored alone against windows pooled from one shared pass (``esc50 analyze``'s
default for a model that pools steps): how often they agree, how often each is right, and how
long each takes, on a soundscape of held-out ESC-50 clips, in the same run.

    python benchmarks/shared_steps.py RUN --data ESC-50 [--fold 1] [--clips 400]

RUN is a run whose validation fold is ``--fold`` (a fold of ``esc50 cv``, so that no clip of
the soundscape was trained on); the soundscape is that fold's clips one after another, in the
order of meta/esc50.csv, each padded or cut to the run's clip length. With the default windows
(one clip long, every half clip) every other window covers exactly one clip ("aligned": right
when its top class is that clip's) and the others straddle two ("right" when it is either's).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

import esc50
from esc50.commands.timeline import build_timeline
from esc50.core.data.audio import load_clip


def soundscape(model: esc50.Model, root: Path, fold: int, clips: int
               ) -> tuple[torch.Tensor, list[int]]:
    """The first ``clips`` clips of ``fold`` one after another (each padded or cut to the
    model's clip length) and the class of each."""
    with (root / "meta" / "esc50.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["fold"]) == fold][:clips]
    audio = torch.cat([load_clip(root / "audio" / r["filename"], model.sample_rate,
                                 model.config.length_wav)[0] for r in rows])
    return audio, [model.class_names.index(r["category"]) for r in rows]


def top_classes(model: esc50.Model, audio: torch.Tensor, share_steps: bool) -> np.ndarray:
    """The top class of each default window of ``audio``."""
    timeline = build_timeline(model.members, model.class_names, [audio], model.sample_rate,
                              model.config.length_wav, share_steps=share_steps)
    return timeline.probabilities.argmax(axis=1)


def right(top: np.ndarray, labels: list[int]) -> tuple[str, str]:
    """How often the aligned windows and the straddling windows are right, as "x % of n"."""
    aligned = [top[j] == labels[j // 2] for j in range(0, len(labels) * 2 - 1, 2)]
    straddling = [top[j] in (labels[j // 2], labels[j // 2 + 1])
                  for j in range(1, len(labels) * 2 - 1, 2)]
    return (f"{100 * np.mean(aligned):.1f} % of {len(aligned)}",
            f"{100 * np.mean(straddling):.1f} % of {len(straddling)}")


def soundscape_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark on a fold's soundscape: RUN, --data, --fold, --clips."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run")
    parser.add_argument("--data", required=True)
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--clips", type=int, default=400)
    return parser


def main() -> None:
    args = soundscape_arguments(__doc__.split("\n")[0]).parse_args()
    model = esc50.load(args.run)
    audio, labels = soundscape(model, Path(args.data), args.fold, args.clips)
    print(f"{args.run}: a soundscape of {len(labels)} fold-{args.fold} clips "
          f"({audio.shape[0] / model.sample_rate / 60:.1f} min); "
          f"{torch.get_num_threads()} threads\n")
    print("| windows | seconds | aligned windows right | straddling windows right |")
    print("|---|---:|---:|---:|")
    tops = {}
    for name, share in (("each alone", False), ("pooled from a shared pass", True)):
        started = time.perf_counter()
        top = top_classes(model, audio, share)
        seconds = time.perf_counter() - started
        tops[name] = top
        aligned, straddling = right(top, labels)
        print(f"| {name} | {seconds:.2f} | {aligned} | {straddling} |")
    agree = np.mean(tops["each alone"] == tops["pooled from a shared pass"])
    print(f"\nthe two agree on the top class of {100 * agree:.1f} % of the windows")


if __name__ == "__main__":
    main()
