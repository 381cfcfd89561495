"""`esc50 predict`: class probabilities for any audio files a user has.

Each file is decoded (any format soundfile reads, any sample rate, any channel count), resampled
and mixed to mono like the training clips; ``-`` is standard input (:mod:`esc50.core.data.stream`).
A file is scored in windows of the training clip length every ``hop`` samples (half a window by
default), one more aligned with the end when the last does not reach it; a file shorter than a
window is one zero-padded window, and one shorter than the featurizer's analysis window is
refused, as in training. Files are read and scored as they stream: the windows a block of audio
completes are scored before the next block is read, so memory does not grow with a file's length
and a live stream is labelled as it arrives. ``esc50 predict`` averages the windows'
probabilities; ``--timeline`` keeps them (:mod:`esc50.commands.timeline`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from esc50.core.data.audio import fit_length
from esc50.core.data.clips import not_audio_note, split_by_name
from esc50.core.data.stream import AudioInput
from esc50.core.errors import Esc50Error
from esc50.core.files.tree import walk_tree
from esc50.core.training.scoring import Member, mean_probabilities, window_probabilities


@dataclass
class Prediction:
    """The top classes of one file, or why it could not be scored; ``notes``: what reading it
    noted (damaged parts, the file read as far as it decodes)."""

    path: Path
    top: list[tuple[str, float]]
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def audio_files(paths: list[Path], note: Callable[[str], None] = lambda _: None
                ) -> list[Path]:
    """Files as given (a missing one too: scoring it reports it; ``-``: standard input), and the
    entries named like audio under folders (walked as :func:`walk_tree` walks a tree); a
    folder with none, one that cannot be listed, a broken link or a FIFO stays in the list:
    scoring it says what it is (never opening a FIFO). A folder's other files are counted in
    one line to ``note`` (:func:`not_audio_note`)."""
    found = []
    for path in paths:
        if not os.path.isdir(path):  # a path the system refuses (a name too long) is no folder
            found.append(path)
            continue
        try:
            tree = walk_tree(path)
        except Esc50Error:
            found.append(path)
            continue
        inside, others = split_by_name(tree.entries, path)
        found += sorted([*inside, *tree.unlisted]) or [path]
        if inside and others:
            note(not_audio_note(path, others, "scored"))
    return found


WINDOW_BATCH = 16  # windows featurized and scored at a time, at most


def at_most_a_batch() -> int:
    """The windows scored at a time where no memory plan says fewer (:meth:`Model.window_batch
    <esc50.commands.api.Model.window_batch>` plans it)."""
    return WINDOW_BATCH


@dataclass
class ScoredWindow:
    """One window of a recording: its first sample, the end of its audio (the recording's end
    for a padded window) and its class probabilities."""

    start: int
    end: int
    probabilities: torch.Tensor


def default_hop(length: int) -> int:
    return max(length // 2, 1)


def windows_by_block(blocks: Iterable[torch.Tensor], length: int, hop: int | None = None
                     ) -> Iterator[list[tuple[int, torch.Tensor, int]]]:
    """For each block of a clip arriving in consecutive blocks, the windows it completes as
    (start, window [length], valid samples): windows every ``hop`` samples (half a window by
    default) and one more aligned with the end when the last does not reach it; a clip no longer
    than ``length`` is one window, zero-padded. Holds at most a window and a block of samples."""
    hop = hop or default_hop(length)
    held, held_from = torch.zeros(0), 0  # samples from ``held_from`` on
    total = next_start = last_end = 0
    for block in blocks:
        held = torch.cat([held, block])
        total += block.shape[0]
        done = []
        while next_start + length <= total:
            done.append((next_start, held[next_start - held_from:next_start - held_from + length],
                         length))
            last_end, next_start = next_start + length, next_start + hop
        yield done
        keep = max(min(next_start, total - length), held_from)
        held, held_from = held[keep - held_from:], keep
    if last_end == 0:  # shorter than a window
        yield [(0, fit_length(held, length), total)]
    elif last_end != total:
        yield [(total - length, held[-length:], length)]


def windows(blocks: Iterable[torch.Tensor], length: int, hop: int | None = None
            ) -> Iterator[tuple[int, torch.Tensor, int]]:
    """The windows of :func:`windows_by_block`, one after another."""
    for done in windows_by_block(blocks, length, hop):
        yield from done


@torch.no_grad()
def scored_windows(members: list[Member], blocks: Iterable[torch.Tensor], length: int,
                   hop: int | None = None, source: str = "the audio", share_steps: bool = False,
                   window_batch: Callable[[], int] = at_most_a_batch) -> Iterator[ScoredWindow]:
    """Every window of a clip of any length arriving in blocks, with its class probabilities
    (one model's, or an ensemble's mean), scored as soon as a block completes it
    (``window_batch()`` at a time at most, asked once a block completes more than one). A clip
    shorter than the featurizer's analysis window is a one-line error naming ``source``.
    ``share_steps``: consecutive whole windows are scored together from one pass over the audio
    they span, by a model that pools steps
    (:func:`~esc50.core.training.scoring.window_probabilities`); else each window alone."""
    hop = hop or default_hop(length)
    min_samples = max(m.classifier.featurizer.min_samples for m in members)
    size = None  # asked once a block completes more than one window
    for done in windows_by_block(blocks, length, hop):
        if size is None and len(done) > 1:
            size = window_batch()
        step = size or 1
        for first in range(0, len(done), step):
            chunk = done[first:first + step]
            short = min(valid for _, _, valid in chunk)
            if short < min_samples:
                raise Esc50Error(f"{source}: {short} samples, shorter than one analysis window "
                                 f"of the featurizer ({min_samples} samples)")
            if share_steps and short == length and len(chunk) > 1:
                span = torch.cat([window[:hop] for _, window, _ in chunk[:-1]] + [chunk[-1][1]])
                scores = window_probabilities(members, span, [k * hop for k in range(len(chunk))],
                                              length)
            else:
                batch = torch.stack([window for _, window, _ in chunk])
                lengths = torch.tensor([valid for _, _, valid in chunk])
                scores = mean_probabilities(members, batch, lengths)
            for (start, _, valid), row in zip(chunk, scores):
                yield ScoredWindow(start, start + valid, row)


def probabilities(members: list[Member], blocks: Iterable[torch.Tensor], length: int,
                  source: str = "the audio", window_batch: Callable[[], int] = at_most_a_batch
                  ) -> torch.Tensor:
    """Class probabilities [classes] of a mono clip of any length arriving in blocks: the mean
    over its half-overlapping windows (``window_batch``: as :func:`scored_windows` says)."""
    total, count = None, 0
    for window in scored_windows(members, blocks, length, source=source,
                                 window_batch=window_batch):
        total = window.probabilities if total is None else total + window.probabilities
        count += 1
    return total / count


def predict_files(members: list[Member], class_names: list[str], audio: AudioInput,
                  length: int, paths: list[Path], top_k: int = 3,
                  window_batch: Callable[[], int] = at_most_a_batch) -> Iterator[Prediction]:
    """Top-``top_k`` (class, probability) per file, with the damage notes ``audio`` takes
    (:meth:`AudioInput.noting`); a file that cannot be read yields its error and the others are
    still scored (``window_batch``: as :func:`scored_windows` says)."""
    for path in paths:
        notes: list[str] = []
        reading = audio.noting(notes)
        try:
            scores = probabilities(members, reading.blocks(path), length, reading.name(path),
                                   window_batch)
        except Esc50Error as exc:
            yield Prediction(path, [], str(exc), notes)
            continue
        yield Prediction(path, top_classes(scores, class_names, top_k), notes=notes)


def top_classes(probabilities: torch.Tensor, class_names: list[str], top_k: int
                ) -> list[tuple[str, float]]:
    """The ``top_k`` most probable (class name, probability), most probable first."""
    values, indices = probabilities.topk(min(top_k, len(class_names)))
    return [(class_names[i], float(v)) for v, i in zip(values, indices)]
