"""`esc50 evaluate`: a trained classifier's metrics on a fold or on its own validation split."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from esc50.core.audio import to_float
from esc50.core.classifier import Classifier
from esc50.core.config import TaskConfig
from esc50.core.datapath import resolve_data_dir
from esc50.core.dataset import AudioCache, find_clips
from esc50.core.errors import Esc50Error
from esc50.core.metrics import classification_report
from esc50.core.registry import Registry
from esc50.core.split import Split, dataset_digests

BATCH = 64
WORST = 10  # clips listed as the worst classified (lowest probability of their true class)


def evaluate_classifier(classifier: Classifier, state: dict, registry: Registry,
                        data: str | None = None, fold: int | None = None,
                        allow_changed_data: bool = False,
                        warn: Callable[[str], None] = print) -> dict:
    """Metrics of a trained classifier (loaded with its checkpoint's ``state``) on ``fold`` of
    ``data``; by default on the data and the recorded validation split the run was trained with,
    refused when that data changed unless ``allow_changed_data`` (then ``warn`` says what
    changed). ``worst``: the clips whose true class got the lowest probability."""
    config = TaskConfig().override(**state["config"])
    table = find_clips(resolve_data_dir(data or config.data), config, registry)
    if fold is None:
        if "split" not in state:
            raise Esc50Error("the checkpoint records no split (written by an older esc50): pass "
                             "a fold")
        split = Split.from_dict(state["split"])
        split.check_data(table, dataset_digests(table), allow_changed_data, warn)
        indices = split.indices(table)[1]
        selection = f"the run's validation split ({split.description})"
    else:
        indices = [i for i, clip in enumerate(table.clips) if clip.fold == fold]
        selection = f"fold {fold}"
        if not indices:
            raise Esc50Error(f"fold {fold} has no clips in {table.root} (folds present: "
                             f"{', '.join(map(str, sorted(set(table.folds))))})")
    clips = [table.clips[i] for i in indices]
    probabilities = probabilities_cached(classifier, AudioCache(
        clips, config, min_samples=classifier.featurizer.min_samples))
    targets = np.array([c.target for c in clips])
    names = state["class_names"]
    report = classification_report(targets, probabilities.argmax(axis=1), names)
    p_true = probabilities[np.arange(len(clips)), targets]
    worst = [{"path": str(clips[i].path), "true": names[targets[i]],
              "predicted": names[int(probabilities[i].argmax())], "p_true": float(p_true[i])}
             for i in np.argsort(p_true, kind="stable")[:WORST]]
    return {"epoch": state["epoch"], "data": str(table.root), "selection": selection, **report,
            "worst": worst}


@torch.no_grad()
def probabilities_cached(classifier: Classifier, cache: AudioCache) -> np.ndarray:
    """Class probabilities [clips, classes] of every clip of a decoded-audio cache."""
    probabilities = []
    for start in range(0, cache.waves.shape[0], BATCH):
        wav = to_float(cache.waves[start:start + BATCH])
        logits = classifier(wav, cache.lengths[start:start + BATCH])
        probabilities.append(torch.softmax(logits.float(), dim=1))
    return torch.cat(probabilities).numpy()
