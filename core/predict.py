"""`esc50 predict`: class probabilities for any audio files a user has.

Each file is decoded (any format soundfile reads, any sample rate, any channel count), resampled
and mixed to mono like the training clips. A file shorter than the training clip length is
padded; a longer one is scored in windows of that length (half-overlapping, the last one aligned
with the end) whose probabilities are averaged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from esc50.core.audio import fit_length, load_clip
from esc50.core.classifier import Classifier
from esc50.core.dataset import AUDIO_EXTENSIONS
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


def windows(wav: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, length] windows of a clip (padded when shorter) and their valid lengths."""
    if wav.shape[0] <= length:
        return fit_length(wav, length)[None], torch.tensor([wav.shape[0]])
    hop = max(length // 2, 1)
    starts = list(range(0, wav.shape[0] - length + 1, hop))
    if starts[-1] != wav.shape[0] - length:
        starts.append(wav.shape[0] - length)
    return torch.stack([wav[s:s + length] for s in starts]), torch.full((len(starts),), length)


@torch.no_grad()
def predict_files(classifier: Classifier, class_names: list[str], sample_rate: int, length: int,
                  paths: list[Path], top_k: int = 3) -> Iterator[Prediction]:
    """Top-``top_k`` (class, probability) per file; a file that cannot be read yields its error
    and the others are still scored."""
    for path in paths:
        try:
            if not path.exists():
                raise Esc50Error(f"{path} does not exist")
            wav, _ = load_clip(path, sample_rate)
        except Esc50Error as exc:
            yield Prediction(path, [], str(exc))
            continue
        yield Prediction(path, top_classes(probabilities(classifier, wav, length), class_names,
                                           top_k))


@torch.no_grad()
def probabilities(classifier: Classifier, wav: torch.Tensor, length: int) -> torch.Tensor:
    """Class probabilities [classes] of a mono clip of any length: the mean over its windows."""
    batch, lengths = windows(wav, length)
    return torch.softmax(classifier(batch, lengths), dim=1).mean(dim=0)


def top_classes(probabilities: torch.Tensor, class_names: list[str], top_k: int
                ) -> list[tuple[str, float]]:
    """The ``top_k`` most probable (class name, probability), most probable first."""
    values, indices = probabilities.topk(min(top_k, len(class_names)))
    return [(class_names[i], float(v)) for v, i in zip(values, indices)]
