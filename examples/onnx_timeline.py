"""What sounds when in a WAV file, with an exported esc50 model and nothing else: onnxruntime,
numpy and soundfile (no torch, no esc50), as on a Raspberry Pi.

    esc50 export runs/my-run --format onnx [--quantize int8]     # on the training machine
    python onnx_timeline.py model.onnx recording.wav [--windows] [--min-prob 0.5]

Prints CSV: one row per segment (consecutive windows with one top class), the rows
`esc50 predict RUN recording.wav --timeline --csv` prints; with --windows one row per window and
class (its top 3). The file is read, resampled and scored a few minutes at a time, so memory does
not grow with its length.

What it does, step by step, as esc50 does it:
1. mix the channels to mono, clip to [-1, 1] and resample to the model's rate with the windowed
   sinc resampler esc50 uses (torchaudio's defaults: Hann window, 6 zero crossings, roll-off
   0.99), written here in numpy;
2. give the model the audio a chunk at a time: a chunk holds CHUNK_WINDOWS windows (the model
   cuts them every hop, and adds one aligned with the end of the recording when the last does
   not reach it), so chunks line up with the windows of the whole recording;
3. merge consecutive windows with one top class into segments, each window speaking for the time
   nearer its centre than any other window's.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from typing import Iterator

import numpy as np
import onnxruntime
import soundfile

CHUNK_WINDOWS = 24  # windows scored per call (a minute of audio at 5 s windows every 2.5 s)
READ_SECONDS = 30.0


class Resampler:
    """torchaudio.functional.resample (sinc_interp_hann, lowpass_filter_width=6, rolloff=0.99)
    over a signal arriving in blocks, in float32 like torchaudio."""

    def __init__(self, rate: int, target: int) -> None:
        common = math.gcd(rate, target)
        self.orig, self.new = rate // common, target // common
        base = min(self.orig, self.new) * 0.99
        self.width = math.ceil(6 * self.orig / base)
        idx = np.arange(-self.width, self.width + self.orig, dtype=np.float32) / self.orig
        t = (np.arange(0, -self.new, -1, dtype=np.float32)[:, None] / self.new + idx[None])
        t = np.clip(t * np.float32(base), -6, 6)
        window = np.cos(t * np.float32(math.pi / 6 / 2)) ** 2
        t = t * np.float32(math.pi)
        with np.errstate(invalid="ignore", divide="ignore"):
            sinc = np.where(t == 0, np.float32(1.0), np.sin(t) / t)
        self.kernel = (sinc * window * np.float32(base / self.orig)).astype(np.float32)
        self.span = 2 * self.width + self.orig
        self.held = np.zeros(self.width, np.float32)  # the zeros torchaudio pads in front
        self.length = self.emitted = 0

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self.orig == self.new:
            return block
        self.length += len(block)
        self.held = np.concatenate([self.held, block.astype(np.float32)])
        if last:
            self.held = np.concatenate([self.held, np.zeros(self.width + self.orig, np.float32)])
        if len(self.held) < self.span:
            return np.zeros(0, np.float32)
        frames = (len(self.held) - self.span) // self.orig + 1
        view = np.lib.stride_tricks.sliding_window_view(self.held, self.span)[::self.orig]
        out = (view[:frames] @ self.kernel.T).reshape(-1)
        self.held = self.held[frames * self.orig:]
        if last:
            out = out[:math.ceil(self.new * self.length / self.orig) - self.emitted]
        self.emitted += len(out)
        return out


def mono_audio(path: str, rate: int) -> Iterator[np.ndarray]:
    """The file's audio, mono at ``rate``, in blocks."""
    with soundfile.SoundFile(path) as audio:
        resampler = Resampler(audio.samplerate, rate)
        blocks = audio.blocks(int(audio.samplerate * READ_SECONDS), dtype="float32",
                              always_2d=True)
        block = next(blocks, None)
        while block is not None:
            following = next(blocks, None)
            mono = np.clip(block.mean(axis=1), -1.0, 1.0)
            yield resampler.push(mono, last=following is None)
            block = following


def window_probabilities(session: onnxruntime.InferenceSession, audio: Iterator[np.ndarray],
                         window: int, hop: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Every window's (start, end) in samples and class probabilities [windows, classes]."""
    span = (CHUNK_WINDOWS - 1) * hop + window  # the audio of one chunk of windows
    held, held_from, start, total = np.zeros(0, np.float32), 0, 0, 0
    spans, scores = [], []

    def score(first: int, samples: np.ndarray) -> None:
        probabilities = session.run(["window_probabilities"], {"wav": samples})[0]
        for k, row in enumerate(probabilities):
            begin = first + k * hop
            if begin + window > first + len(samples):  # the window aligned with the end
                begin = first + len(samples) - window
            spans.append((begin, begin + window))
            scores.append(row)

    for block in audio:
        held = np.concatenate([held, block])
        total += len(block)
        while start + span <= total:
            score(start, held[start - held_from:start - held_from + span])
            start += CHUNK_WINDOWS * hop
        keep = max(min(start - window, total - window), held_from, 0)
        held, held_from = held[keep - held_from:], keep
    if total < window:  # shorter than a window: zero-padded (esc50 also tells the model how
        # much of it is audio, so a model that uses it can differ here)
        score(0, np.pad(held, (0, window - total)))
        spans[-1] = (0, total)
    elif total - start >= window:
        score(start, held[start - held_from:])
    elif not spans or total - window > spans[-1][0]:  # the grid missed the end
        score(total - window, held[total - window - held_from:])
    return spans, np.array(scores)


def segments(spans: list[tuple[int, int]], scores: np.ndarray, min_prob: float
             ) -> list[tuple[float, float, int, float, float, int]]:
    """(start, end, class, mean, max, windows) in samples, as esc50 predict --timeline."""
    centres = [(a + b) / 2 for a, b in spans]
    bounds = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [spans[-1][1]]
    labels = [int(row.argmax()) if row.max() >= min_prob else None for row in scores]
    found, first = [], 0
    for i in range(1, len(labels) + 1):
        if i < len(labels) and labels[i] == labels[first]:
            continue
        if labels[first] is not None:
            values = scores[first:i, labels[first]].astype(np.float64)
            found.append((bounds[first], bounds[i], labels[first], float(values.mean()),
                          float(values.max()), i - first))
        first = i
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an ONNX file written by esc50 export (its .json beside it)")
    parser.add_argument("audio", help="a WAV (or any file soundfile reads)")
    parser.add_argument("--windows", action="store_true", help="a row per window and class")
    parser.add_argument("--min-prob", type=float, default=0.0)
    args = parser.parse_args()
    meta = json.load(open(args.model + ".json"))
    rate, window, hop = meta["sample_rate"], meta["window_samples"], meta["hop_samples"]
    names = meta["class_names"]
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    spans, scores = window_probabilities(session, mono_audio(args.audio, rate), window, hop)
    rows = csv.writer(sys.stdout, lineterminator="\n")
    if args.windows:
        rows.writerow(["file", "start", "end", "rank", "class", "probability"])
        for (start, end), row in zip(spans, scores):
            top = [i for i in np.argsort(-row, kind="stable")[:3] if row[i] >= args.min_prob]
            rows.writerows([args.audio, f"{start / rate:.3f}", f"{end / rate:.3f}", rank,
                            names[i], f"{row[i]:.4f}"] for rank, i in enumerate(top, 1))
        return
    rows.writerow(["file", "start", "end", "class", "mean_probability", "max_probability",
                   "windows"])
    for start, end, label, mean, top, count in segments(spans, scores, args.min_prob):
        rows.writerow([args.audio, f"{start / rate:.3f}", f"{end / rate:.3f}", names[label],
                       f"{mean:.4f}", f"{top:.4f}", count])


if __name__ == "__main__":
    main()
