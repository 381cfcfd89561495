"""The worked example of docs/analyze.md, reproducible: a tree of "field recordings" made of
held-out ESC-50 clips joined end to end (the class of every stretch known), and how often
``esc50 analyze`` put the right class on top.

    python examples/field_recordings.py make ESC-50 recordings [--fold 1]
    esc50 analyze runs/laptop-cv/fold-1 recordings --out results --format json
    python examples/field_recordings.py score recordings results

``make`` writes SITES x DAYS recordings (``site1/day1.flac`` ...) of CLIPS clips each: the
first clips of ``--fold`` in a shuffled order (seed 0), each padded or cut to 5 s, at 44.1 kHz,
with ``truth.csv`` (recording, start, end, class). ``score`` reads the JSON results
(``--format json``) and counts the windows that cover exactly one clip (those starting where a
clip starts) whose top class is that clip's. Score with a model that never trained on
``--fold`` (a cross-validation fold model), or the figure says nothing of its accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import soundfile
import torch

from esc50.core.data.audio import load_clip

SITES, DAYS, CLIPS = 4, 3, 12
RATE, CLIP_SECONDS = 44_100, 5


def make(data: Path, tree: Path, fold: int) -> None:
    """The recordings under ``tree`` and their ``truth.csv``."""
    with (data / "meta" / "esc50.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["fold"]) == fold]
    random.Random(0).shuffle(rows)
    truth = []
    for k in range(SITES * DAYS):
        name = f"site{k // DAYS + 1}/day{k % DAYS + 1}.flac"
        clips = rows[k * CLIPS:(k + 1) * CLIPS]
        audio = torch.cat([load_clip(data / "audio" / row["filename"], RATE,
                                     RATE * CLIP_SECONDS)[0] for row in clips])
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(tree / name, audio.numpy(), RATE)
        truth += [(name, j * CLIP_SECONDS, (j + 1) * CLIP_SECONDS, row["category"])
                  for j, row in enumerate(clips)]
    with (tree / "truth.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("recording", "start", "end", "class"), *truth])
    print(f"{SITES * DAYS} recordings of {CLIPS} fold-{fold} clips under {tree}, "
          f"{len(truth)} clips in {tree / 'truth.csv'}")


def score(tree: Path, results: Path) -> None:
    """How many windows that cover exactly one clip have its class on top."""
    with (tree / "truth.csv").open() as handle:
        truth = {(row["recording"], float(row["start"])): row["class"]
                 for row in csv.DictReader(handle)}
    right = total = 0
    for name in sorted({recording for recording, _ in truth}):
        windows = json.loads((results / f"{name}.json").read_text())["windows"]
        for window in windows:
            label = truth.get((name, float(window["start"])))
            if label is not None and window["end"] - window["start"] == CLIP_SECONDS:
                total += 1
                right += window["top"][0]["class"] == label
    print(f"{right} of {total} windows covering one clip ({100 * right / total:.1f} %) have "
          "its class on top")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    making = commands.add_parser("make", help="write the recordings and truth.csv")
    making.add_argument("data", type=Path, help="the ESC-50 folder (meta/esc50.csv, audio/)")
    making.add_argument("tree", type=Path)
    making.add_argument("--fold", type=int, default=1)
    scoring = commands.add_parser("score", help="score the results of esc50 analyze")
    scoring.add_argument("tree", type=Path)
    scoring.add_argument("results", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        make(args.data, args.tree, args.fold)
    else:
        score(args.tree, args.results)


if __name__ == "__main__":
    main()
