"""A run's validation clips in the batches of its :class:`~esc50.core.training.scoring.Scoring`:
the clips in the split's order, ``batch`` at a time, each batch prepared as a validation batch
(:meth:`FeatureSource.prepare`: features from the run's feature cache, or from the decoded
audio padded to the clip length), so that the run's validation and every later scoring of the
same clips (``esc50 evaluate`` featurizes them in the same batches) give the same accuracy.

The built-in featurizers give a clip the same features in any batch (tests/test_logmel.py), so
features taken from the feature cache, where each clip was featurized once for every fold,
equal those ``evaluate`` computes batch by batch."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from esc50.core.data.audio import to_float
from esc50.core.data.audiocache import AudioCache
from esc50.core.plugin_api.contracts import ClipTable
from esc50.core.results.metrics import evaluation
from esc50.core.training.distributed import Distributed
from esc50.core.training.scoring import Scoring, logits, probabilities_of
from esc50.core.training.stages import BatchRecord, PreparedBatch, Stages

Prepare = Callable[[dict[str, torch.Tensor], Stages], tuple[torch.Tensor, torch.Tensor,
                                                              torch.Tensor]]


class ValidationClips:
    """The clips at rows ``indices`` of ``table``, decoded in ``audio``; ``prepare(loaded,
    stages)`` makes a validation batch (features in the model's layout, frames, class indices)
    from a loader-style batch of them."""

    def __init__(self, table: ClipTable, audio: AudioCache, indices: list[int], stages: Stages,
                 prepare: Prepare) -> None:
        self.table, self.audio, self.indices = table, audio, indices
        self.stages, self.prepare = stages, prepare
        self.labels = torch.tensor([table.clips[i].target for i in indices], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.indices)

    def starts(self, scoring: Scoring, dist: Distributed) -> list[int]:
        """Where the batches this process scores start: every batch, dealt round the
        processes (so a batch holds the same clips however many processes there are)."""
        return list(scoring.starts(len(self.indices)))[dist.rank::dist.world_size]

    def loaded(self, start: int, batch: int) -> dict[str, torch.Tensor]:
        """The batch of ``batch`` clips from ``start``, as a loader gives it: rows, labels, and
        the decoded audio padded to the clip length."""
        rows = torch.tensor(self.indices[start:start + batch], dtype=torch.long)
        return {"index": rows, "label": self.labels[start:start + batch],
                "wav": self.audio.waves[rows], "length": self.audio.lengths[rows]}

    def batches(self, scoring: Scoring, dist: Distributed, epoch: int = 0
                ) -> Iterator[PreparedBatch]:
        """This process's validation batches."""
        for step, start in enumerate(self.starts(scoring, dist), start=1):
            where = f" at epoch {epoch}, validation, step {step}"
            loaded = self.loaded(start, scoring.batch)
            features, frames, targets = self.prepare(loaded, self.stages.at(where))
            yield PreparedBatch(features, frames, targets, BatchRecord(loaded, None, where))

    @torch.no_grad()
    def probabilities(self, model: nn.Module, scoring: Scoring) -> np.ndarray:
        """Class probabilities [clips, classes] of ``model`` on every validation clip, in the
        split's order (in every process)."""
        model.eval()
        classifier = self.stages.classifier
        out = []
        for start in scoring.starts(len(self.indices)):
            features, frames, _ = self.prepare(self.loaded(start, scoring.batch), self.stages)
            out.append(probabilities_of(logits(classifier, features, frames, scoring,
                                               call=model)).cpu())
        return torch.cat(out).numpy()

    def final_evaluation(self, model: nn.Module, scoring: Scoring
                         ) -> tuple[Callable[[], dict[str, Any]], Callable[[dict], np.ndarray]]:
        """What the end of a run needs: a function giving the evaluation of ``model`` on the
        validation clips (computed when called, from what is in memory), and one giving a
        listed clip's samples."""
        clips = [self.table.clips[i] for i in self.indices]

        def report() -> dict[str, Any]:
            result = evaluation(self.probabilities(model, scoring), self.labels.numpy(),
                                [str(c.path) for c in clips], self.table.class_names)
            return {**result, "selection": "the run's validation split"}

        def samples(listed: dict) -> np.ndarray:
            row = self.indices[listed["row"]]
            return to_float(self.audio.waves[row, :int(self.audio.lengths[row])]).numpy()

        return report, samples
