"""The trained models behind ``esc50.load`` and the commands that take a run: one run folder (or
checkpoint file), or a cross-validation folder, whose fold models are used together as an
ensemble (their class probabilities averaged).

An ensemble is scored only on clips none of its members trained on: ``evaluate`` refuses a
selection holding a clip (by name, or by content: the sha256 each run recorded) that any member
trained on. The k models of a cross-validation over every fold have, between them, trained on
every clip; those of a cross-validation with a fold left out (``ignore_folds``) can be scored
together on that fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from esc50.commands.crossval import read_summary, same_experiment
from esc50.core.config import TaskConfig, load_config
from esc50.core.data.split import Split
from esc50.core.errors import Esc50Error, did_you_mean
from esc50.core.files.digest import file_sha256
from esc50.core.plugin_api.registry import Registry
from esc50.core.plugin_api.trained import TrainedModel
from esc50.core.results.folder import CHECKPOINTS, checked_which, checkpoint_path
from esc50.core.training.classifier import load_classifier
from esc50.core.training.scoring import Member, Scoring

FOLD_PREFIX = "fold-"


@dataclass
class LoadedRun:
    """One trained model: its checkpoint file, classifier and what its checkpoint holds."""

    path: Path
    member: Member
    state: dict[str, Any]

    @property
    def config(self) -> TaskConfig:
        return TaskConfig().override(**self.state["config"])


def model_source(source: str | Path, registry: Registry) -> tuple[Path, TrainedModel | None]:
    """Where the model ``source`` names is: a path that exists (a run folder, a checkpoint
    file, a cross-validation folder), else a trained model a plugin ships by that name (its
    file checked against its registered sha256 first), with that model."""
    path = Path(source)
    if path.exists() or str(source) not in registry.trained:
        if not path.exists():
            names = ", ".join(sorted(registry.trained)) or "none installed"
            hint = did_you_mean(str(source), registry.trained)
            raise Esc50Error(f"{source}: no such run folder or checkpoint, and no trained model "
                             f"of that name ({hint + ' ' if hint else ''}trained models: "
                             f"{names}; esc50 weights list shows them)")
        return path, None
    trained = registry.trained[str(source)]
    return trained.verified(), trained


def load_runs(path: Path, which: str, registry: Registry,
              warn: Callable[[str], None] = print) -> list[LoadedRun]:
    """The model of a run folder or checkpoint file, or every fold model of a
    cross-validation folder (each at its final epoch, or ``which="best"``). The members of an
    ensemble must share class names, sample rate and clip length, and have finished training."""
    if path.is_dir() and not (path / CHECKPOINTS[checked_which(which)]).is_file() \
            and any(path.glob(f"{FOLD_PREFIX}*")):
        paths = checked_members(path, which)
    else:
        paths = [checkpoint_path(path, which)]
    runs = []
    for run_path in paths:
        classifier, state = load_classifier(run_path, registry, which, warn)
        runs.append(LoadedRun(checkpoint_path(run_path, which), Member(
            classifier, Scoring.recorded(state, warn)), state))
    if len(runs) > 1:
        check_ensemble(runs)
    return runs


def checked_members(folder: Path, which: str) -> list[Path]:
    """The fold runs of the cross-validation ``folder``, checked against its ``cv.json``: every
    fold it lists is there, with its checkpoint ``which``, trained with the settings it records
    (its config digest) on that fold; no other ``fold-*`` folder, and no fold that is another
    one under a second name (a link, a copy). Anything else is a one-line error naming it."""
    summary = read_summary(folder)
    listed = [int(k) for k in summary["folds"]]
    present = {p.name: p for p in folder.glob(f"{FOLD_PREFIX}*") if p.is_dir()}
    foreign = sorted(set(present) - {f"{FOLD_PREFIX}{k}" for k in listed})
    if foreign:
        raise Esc50Error(f"{folder / foreign[0]} is not one of the folds {folder / 'cv.json'} "
                         f"lists ({', '.join(map(str, listed))}): a run copied in? Move it out "
                         "to use the cross-validation's models together")
    runs = {fold: folder / f"{FOLD_PREFIX}{fold}" for fold in listed}
    seen: dict[str, Path] = {}  # checkpoint digest -> the fold run holding it
    for fold, run in runs.items():
        checkpoint = run / CHECKPOINTS[which]
        if not checkpoint.is_file():
            missing = "is missing" if not run.is_dir() else f"has no {checkpoint.name}"
            raise Esc50Error(f"{run} {missing}, but {folder / 'cv.json'} lists fold {fold}: "
                             "run the same esc50 cv command again to train it, or use the fold "
                             "runs one by one")
        digest = file_sha256(checkpoint)
        if digest in seen:
            raise Esc50Error(f"{run} holds the same model as {seen[digest]} (a link or a copy): "
                             "an ensemble's members are distinct fold models")
        seen[digest] = run
    for fold, run in runs.items():
        config = load_config(run / "config.toml")
        if config.val_fold != fold or not same_experiment(summary, config):
            raise Esc50Error(f"{run} was not trained as fold {fold} of this cross-validation "
                             f"(its config holds fold {config.val_fold} and other settings than "
                             f"{folder / 'cv.json'} records): a foreign run?")
    return list(runs.values())


def check_ensemble(runs: list[LoadedRun]) -> None:
    """Refuse members that cannot be averaged (other classes, rate or clip length) or that
    stopped before their last epoch."""
    first = runs[0]
    for run in runs:
        config = run.config
        if run.state["epoch"] != config.num_epochs:
            raise Esc50Error(f"{run.path} holds epoch {run.state['epoch']} of "
                             f"{config.num_epochs}: finish its cross-validation first (run the "
                             "same esc50 cv command again)")
        for what, mine, theirs in (
                ("class names", run.state["class_names"], first.state["class_names"]),
                ("sample rate", config.sample_rate, first.config.sample_rate),
                ("clip length", config.length_wav, first.config.length_wav)):
            if mine != theirs:
                raise Esc50Error(f"{run.path} and {first.path} differ in their {what}: the "
                                 "models of an ensemble must share them")


def check_unseen(runs: list[LoadedRun], names: list[str], digests: dict[str, str],
                 selection: str) -> None:
    """Refuse to score a model or an ensemble on clips (``names``, with their sha256 in
    ``digests``) that it (any member) trained on, by name or by content."""
    for run in runs:
        split = Split.from_dict(run.state["split"])
        trained = set(split.train)
        trained_audio = {split.digests[n] for n in split.train if n in split.digests}
        seen = [n for n in names if n in trained or digests.get(n) in trained_audio]
        if seen:
            model = "a model" if len(runs) == 1 else "an ensemble"
            raise Esc50Error(
                f"{selection}: {len(seen)} of its {len(names)} clips ({seen[0]}"
                f"{', ...' if len(seen) > 1 else ''}) were used to train {run.path.parent}: "
                f"{model} is scored only on clips it never trained on (its validation split, "
                "or a fold a cross-validation left out with ignore_folds); --training-clips "
                "scores them anyway, labelled as training accuracy")


def describe(runs: list[LoadedRun]) -> str:
    """'an ensemble of k models (folder)' or the one model's checkpoint."""
    if len(runs) == 1:
        return str(runs[0].path)
    return f"an ensemble of {len(runs)} models ({runs[0].path.parent.parent})"
