"""What a dataset plugin returns and what a logger receives: the clip table of a dataset folder
(:class:`Clip`, :class:`ClipTable`, :class:`DatasetReader`) and the events of a run
(:class:`RunStart`, :class:`Logger`). Plugins import these names from ``esc50`` itself; the
base classes of every kind are gathered in :mod:`esc50.core.plugin_api.contracts`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from esc50.core.config import TaskConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# --- datasets ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clip:
    """One labelled clip. ``path``: its file (absolute, or relative to the working directory;
    esc50 makes it absolute and checks that it is a regular file); ``fold``: the dataset's
    official fold from 1, 0 when it has none; ``target``: the index of its class in
    ``ClipTable.class_names``; ``group``: a string shared by the clips cut from one recording,
    which no split separates."""

    path: Path
    fold: int
    target: int
    group: str


@dataclass
class ClipTable:
    """The clips of a dataset folder, its class names (index = target), the dataset's default
    sample rate and clip length, and the files it left out."""

    root: Path
    clips: list[Clip]
    class_names: list[str]
    sample_rate: int = 44_100
    clip_seconds: float = 5.0
    ignored: list[str] = field(default_factory=list)  # files not used, with why
    hidden: int = 0  # hidden and ._* AppleDouble files skipped
    licence: str | None = None  # the data's licence (the reader's, unless the table says)

    @property
    def labels(self) -> list[int]:
        return [c.target for c in self.clips]

    @property
    def folds(self) -> list[int]:
        return [c.fold for c in self.clips]

    @property
    def has_folds(self) -> bool:
        return any(c.fold for c in self.clips)

    def names(self) -> list[str]:
        """Each clip's name as a run records its split: its path relative to the dataset folder,
        or its absolute path for a clip outside it (a manifest may list such)."""
        root = os.path.abspath(self.root)
        names = []
        for clip in self.clips:
            path = os.path.abspath(clip.path)
            inside = os.path.commonpath([root, path]) == root
            names.append(Path(os.path.relpath(path, root) if inside else path).as_posix())
        return names


class DatasetReader:
    """Base class of dataset plugins: ``read(root)`` returns the :class:`ClipTable` of a
    folder. A factory ``factory(config, **options) -> DatasetReader`` builds one. ``licence``:
    the licence of the data it reads, as its publisher states it (said in every run's model
    card; None: not stated, the card asks the user to check)."""

    licence: str | None = None

    def read(self, root: Path) -> ClipTable:
        """List the labelled clips of a dataset folder.

        Args:
            root: the folder given with ``--data``.

        Returns:
            The :class:`ClipTable`: every clip (path, class index, fold, recording group),
            the class names, the dataset's sample rate and clip length, its licence and the
            files it left out. Called once per experiment, before any audio is decoded; a
            problem with the folder is an ``Esc50Error`` naming the file."""
        raise NotImplementedError


# --- loggers -------------------------------------------------------------------------------

@dataclass
class RunStart:
    """What a logger learns when a run starts (or resumes: ``history`` holds the epochs so far)."""

    run_dir: Path
    config: TaskConfig
    class_names: list[str]
    history: list[dict[str, float]] = field(default_factory=list)


class Logger:
    """Base class of loggers. Each event does nothing unless overridden; ``figure`` and ``audio``
    events at the end of a run (the confusion matrix, misclassified clips) are only computed when
    some logger overrides them."""

    def start(self, run: RunStart) -> None:
        """The run starts, or resumes after ``run.history``."""

    def step(self, step: int, values: dict[str, float]) -> None:
        """Every few training steps (where the loop reads the loss back anyway).

        Args:
            step: optimizer steps since the run began.
            values: ``train_loss`` (the epoch's running mean) and ``lr``."""

    def epoch(self, row: dict[str, float]) -> None:
        """An epoch finished, after its checkpoint was written.

        Args:
            row: its history row: ``epoch``, ``train_loss``, ``train_accuracy``,
                ``val_loss``, ``val_accuracy`` (NaN for a run that holds no clips out), ``lr``,
                ``steps``, ``seconds``."""

    def figure(self, name: str, figure: Figure, epoch: int) -> None:
        """A figure: ``learning_curves`` whenever curves.png is redrawn (about ten times a run
        and after the last epoch), ``confusion_matrix`` at the end."""

    def audio(self, name: str, wav: np.ndarray, sample_rate: int, caption: str) -> None:
        """An audio example: the worst-classified validation clips at the end (mono float,
        [-1, 1]; ``caption`` gives the true and predicted class)."""

    def end(self, metrics: dict[str, Any]) -> None:
        """The run finished.

        Args:
            metrics: what ``metrics.json`` holds (``final_val_accuracy`` is None for a run
                that held no clips out)."""
