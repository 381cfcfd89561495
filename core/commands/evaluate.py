"""`esc50 evaluate`: a trained classifier's metrics on a fold or on its own validation split."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from esc50.core.data.audio import to_float
from esc50.core.training.classifier import Classifier
from esc50.core.config import TaskConfig
from esc50.core.data.location import resolve_data_dir
from esc50.core.data.audiocache import AudioCache
from esc50.core.data.clips import find_clips
from esc50.core.errors import Esc50Error
from esc50.core.results.metrics import evaluation
from esc50.core.plugins.registry import Registry
from esc50.core.data.split import Split, dataset_digests

BATCH = 64


def evaluate_classifier(classifier: Classifier, state: dict, registry: Registry,
                        data: str | None = None, fold: int | None = None,
                        allow_changed_data: bool = False,
                        warn: Callable[[str], None] = print) -> dict:
    """Metrics of a trained classifier (loaded with its checkpoint's ``state``) on ``fold`` of
    ``data``; by default on the data and the recorded validation split the run was trained with,
    refused when that data changed unless ``allow_changed_data`` (then ``warn`` says what
    changed). ``worst``: the clips whose true class got the lowest probability."""
    config = TaskConfig().override(**state["config"])
    # a fold asked for by name is read even where the run left it out (an outer test fold)
    table = find_clips(resolve_data_dir(data or config.data),
                       config if fold is None else config.override(ignore_folds=[]), registry)
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
    report = evaluation(probabilities, np.array([c.target for c in clips]),
                        [str(c.path) for c in clips], state["class_names"])
    return {"epoch": state["epoch"], "data": str(table.root), "selection": selection, **report}


@torch.no_grad()
def probabilities_cached(classifier: Classifier, cache: AudioCache) -> np.ndarray:
    """Class probabilities [clips, classes] of every clip of a decoded-audio cache."""
    probabilities = []
    for start in range(0, cache.waves.shape[0], BATCH):
        wav = to_float(cache.waves[start:start + BATCH])
        logits = classifier(wav, cache.lengths[start:start + BATCH])
        probabilities.append(torch.softmax(logits.float(), dim=1))
    return torch.cat(probabilities).numpy()
