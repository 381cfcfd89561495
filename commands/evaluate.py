"""`esc50 evaluate`: a trained model's (or an ensemble's) metrics on a fold or on its own
validation split."""

from __future__ import annotations

from typing import Callable

import numpy as np

from esc50.commands.members import LoadedRun, check_unseen
from esc50.core.data.audiocache import AudioCache
from esc50.core.data.clips import find_clips
from esc50.core.data.location import resolve_data_dir
from esc50.core.data.split import Split, dataset_digests
from esc50.core.errors import Esc50Error
from esc50.core.files.digest import file_sha256
from esc50.core.plugin_api.registry import Registry
from esc50.core.results.metrics import classification_report, evaluation
from esc50.core.training.scoring import planned, probabilities


TRAINING_LABEL = (" (clips the model trained on: training accuracy, not an estimate for unseen "
                  "clips)")


def evaluate_runs(runs: list[LoadedRun], registry: Registry, data: str | None = None,
                  fold: int | None = None, allow_changed_data: bool = False,
                  warn: Callable[[str], None] = print, training_clips: bool = False) -> dict:
    """Metrics of a trained model on ``fold`` of ``data``; by default on the data and the
    recorded validation split the run was trained with, refused when that data changed unless
    ``allow_changed_data`` (then ``warn`` says what changed). Scored as the run scored its
    validation clips (:mod:`esc50.core.training.scoring`), so on its own split it gives the
    run's final accuracy. Several ``runs`` are an ensemble (probabilities averaged); ``members``
    then gives each one's accuracy alone. A fold holding clips any of the models trained on is
    refused, unless ``training_clips``: then the figures are labelled training accuracy
    (``"training_clips": true``, and the selection says so). ``worst``: the clips whose true
    class got the lowest probability."""
    first = runs[0]
    config, state = first.config, first.state
    # a fold asked for by name is read even where the run left it out (an outer test fold)
    table = find_clips(resolve_data_dir(data or config.data),
                       config if fold is None else config.override(ignore_folds=[]), registry)
    names = table.names()
    if fold is None:
        if len(runs) > 1:
            raise Esc50Error(f"an ensemble of {len(runs)} models has no validation split of its "
                             "own: pass --fold N, a fold none of its models trained on")
        if "split" not in state:
            raise Esc50Error("the checkpoint records no split (written by an older esc50): pass "
                             "a fold")
        split = Split.from_dict(state["split"])
        if not split.holds_out:
            raise Esc50Error(
                f"{first.path} was trained on every clip of its data ({split.description}), so "
                "it has no validation clips of its own: its estimate for unseen clips is the "
                "cross-validation its model card quotes. Score it on other labelled recordings "
                "with --data DIR [--fold N], or on its training clips with --fold N "
                "--training-clips (labelled as training accuracy)")
        split.check_data(table, dataset_digests(table), allow_changed_data, warn)
        indices = split.indices(table)[1]
        selection = f"the run's validation split ({split.description})"
    else:
        indices = [i for i, clip in enumerate(table.clips) if clip.fold == fold]
        selection = f"fold {fold}"
        if not indices:
            raise Esc50Error(f"fold {fold} has no clips in {table.root} (folds present: "
                             f"{', '.join(map(str, sorted(set(table.folds))))})")
        if training_clips:
            selection += TRAINING_LABEL
        else:
            check_unseen(runs, [names[i] for i in indices],
                         {names[i]: file_sha256(table.clips[i].path) for i in indices}, selection)
    clips = [table.clips[i] for i in indices]
    targets = np.array([c.target for c in clips])
    members = [planned(run.member, len(clips), config, warn) for run in runs]
    audio = AudioCache(clips, config, min_samples=max(
        member.classifier.featurizer.min_samples for member in members))
    each = [probabilities(member.classifier, audio.waves, audio.lengths, member.scoring)
            for member in members]
    report = evaluation(sum(each) / len(each), targets, [str(c.path) for c in clips],
                        state["class_names"])
    result = {"epoch": state["epoch"], "data": str(table.root), "selection": selection,
              "training_clips": training_clips, **report}
    if len(runs) > 1:
        result["members"] = [
            {"run": str(run.path), "accuracy": classification_report(
                targets, scores.argmax(axis=1), state["class_names"])["accuracy"]}
            for run, scores in zip(runs, each)]
    return result
