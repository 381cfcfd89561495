"""`esc50 predict`: class probabilities for any audio files a user has.

Each file is decoded (any format soundfile reads, any sample rate, any channel count), resampled
and mixed to mono like the training clips. A file shorter than the training clip length is
padded; a longer one is scored in windows of that length (half-overlapping, the last one aligned
with the end) whose probabilities are averaged. Files are read and scored as they stream (a few
windows at a time), so memory does not grow with a file's length."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from itertools import islice
from typing import Iterable, Iterator

import torch

from esc50.core.data.audio import fit_length, read_mono
from esc50.core.training.classifier import Classifier
from esc50.core.data.clips import AUDIO_EXTENSIONS
from esc50.core.errors import Esc50Error


@dataclass
class Prediction:
    """The top classes of one file, or why it could not be scored."""

    path: Path
    top: list[tuple[str, float]]
    error: str | None = None


def audio_files(paths: list[Path]) -> list[Path]:
    """Files as given (a missing one too: scoring it reports it), and the audio files under
    folders (sorted)."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            found.append(path)
    return found


WINDOW_BATCH = 16  # windows featurized and scored at a time


def windows(blocks: Iterable[torch.Tensor], length: int) -> Iterator[tuple[torch.Tensor, int]]:
    """(window [length], valid samples) of a clip arriving in consecutive blocks: windows every
    ``length // 2`` samples and one more aligned with the end when the last does not reach it; a
    clip no longer than ``length`` is one window, zero-padded. Holds at most a window and a
    block of samples."""
    hop = max(length // 2, 1)
    held, held_from = torch.zeros(0), 0  # samples from ``held_from`` on
    total = next_start = last_end = 0
    for block in blocks:
        held = torch.cat([held, block])
        total += block.shape[0]
        while next_start + length <= total:
            yield held[next_start - held_from:next_start - held_from + length], length
            last_end, next_start = next_start + length, next_start + hop
        keep = max(min(next_start, total - length), held_from)
        held, held_from = held[keep - held_from:], keep
    if last_end == 0:  # shorter than a window
        yield fit_length(held, length), total
    elif last_end != total:
        yield held[-length:], length


@torch.no_grad()
def predict_files(classifier: Classifier, class_names: list[str], sample_rate: int, length: int,
                  paths: list[Path], top_k: int = 3) -> Iterator[Prediction]:
    """Top-``top_k`` (class, probability) per file; a file that cannot be read yields its error
    and the others are still scored."""
    for path in paths:
        try:
            scores = probabilities(classifier, read_mono(path, sample_rate), length)
        except Esc50Error as exc:
            yield Prediction(path, [], str(exc))
            continue
        yield Prediction(path, top_classes(scores, class_names, top_k))


@torch.no_grad()
def probabilities(classifier: Classifier, blocks: Iterable[torch.Tensor], length: int
                  ) -> torch.Tensor:
    """Class probabilities [classes] of a mono clip of any length arriving in blocks: the mean
    over its windows, scored ``WINDOW_BATCH`` at a time."""
    pending = windows(blocks, length)
    total, count = None, 0
    while chunk := list(islice(pending, WINDOW_BATCH)):
        batch = torch.stack([window for window, _ in chunk])
        lengths = torch.tensor([valid for _, valid in chunk])
        summed = torch.softmax(classifier(batch, lengths), dim=1).sum(dim=0)
        total = summed if total is None else total + summed
        count += len(chunk)
    return total / count


def top_classes(probabilities: torch.Tensor, class_names: list[str], top_k: int
                ) -> list[tuple[str, float]]:
    """The ``top_k`` most probable (class name, probability), most probable first."""
    values, indices = probabilities.topk(min(top_k, len(class_names)))
    return [(class_names[i], float(v)) for v, i in zip(values, indices)]
