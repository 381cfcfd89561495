"""The end of a run, scored from what is in memory: the scored model's class probabilities on
every validation clip (features from the run's cache or its decoded audio, nothing read or
decoded again), their evaluation, and the samples of any clip it lists."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from esc50.core.data.audio import to_float
from esc50.core.data.audiocache import ClipDataset
from esc50.core.data.collate import collate
from esc50.core.results.metrics import evaluation
from esc50.core.training.batches import FeatureSource
from esc50.core.training.loop import autocast


@torch.no_grad()
def validation_probabilities(source: FeatureSource, model: nn.Module, amp: bool) -> np.ndarray:
    """Class probabilities [validation clips, classes] of ``model``, in the split's order (all
    validation clips, in every process)."""
    model.eval()
    clips = ClipDataset(source.audio, source.table.labels, source.val_indices,
                        source.val_set.audio)
    probabilities = []
    for batch in DataLoader(clips, source.config.batch_size, collate_fn=collate):
        features, frames, _ = source.prepare(batch, False, None)
        with autocast(source.device, amp):
            logits = model(features, frames)
        probabilities.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(probabilities).numpy()


def final_evaluation(source: FeatureSource, model: nn.Module, amp: bool, class_names: list[str]
                     ) -> tuple[Callable[[], dict[str, Any]], Callable[[dict], np.ndarray]]:
    """What the loggers' end of a run needs: a function giving the evaluation of ``model`` on
    the validation clips (computed when called), and one giving a listed clip's samples."""
    clips = [source.table.clips[i] for i in source.val_indices]

    def report() -> dict[str, Any]:
        result = evaluation(validation_probabilities(source, model, amp),
                            np.array([c.target for c in clips]), [str(c.path) for c in clips],
                            class_names)
        return {**result, "selection": "the run's validation split"}

    def samples(listed: dict) -> np.ndarray:
        row = source.val_indices[listed["row"]]
        return to_float(source.audio.waves[row, :int(source.audio.lengths[row])]).numpy()

    return report, samples
