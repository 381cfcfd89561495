"""Loggers: plugins that receive a run's events (start, metrics every few steps and every epoch,
figures, audio examples, the end) to show them elsewhere (TensorBoard, a CSV file, MLflow, ...).

Only the main process logs. A logger that raises is reported once, on one line naming it, and
disabled for the rest of the run: a logger never ends a run and never changes its results (its
events are read from what the run computes anyway, and loggers are not recorded as plugins the
run needs)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

import numpy as np

from esc50.core.config import TaskConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The run folder's history.csv is written by this built-in logger, which every run has.
HISTORY_LOGGER = "plugins.history"
EXAMPLES = 4  # worst-classified validation clips sent as audio at the end of a run


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
        """Every few training steps: the running ``train_loss`` of the epoch and the ``lr``."""

    def epoch(self, row: dict[str, float]) -> None:
        """An epoch finished: its history row (``epoch``, ``train_loss``, ``val_accuracy``...)."""

    def figure(self, name: str, figure: Figure, epoch: int) -> None:
        """A figure: ``learning_curves`` whenever curves.png is redrawn (about ten times a run
        and after the last epoch), ``confusion_matrix`` at the end."""

    def audio(self, name: str, wav: np.ndarray, sample_rate: int, caption: str) -> None:
        """An audio example: the worst-classified validation clips at the end (mono float,
        [-1, 1]; ``caption`` gives the true and predicted class)."""

    def end(self, metrics: dict[str, Any]) -> None:
        """The run finished: its metrics (``metrics.json``)."""


class Loggers:
    """The run's loggers by spec; :meth:`emit` passes an event to each, and disables (with one
    warning) a logger that raises."""

    def __init__(self, loggers: dict[str, Logger], warn: Callable[[str], None]) -> None:
        self.active, self.warn = dict(loggers), warn

    def emit(self, event: str, *args: Any) -> None:
        for spec, logger in list(self.active.items()):
            try:
                getattr(logger, event)(*args)
            except Exception as exc:  # a logger must never end the run
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                self.warn(f"warning: logger {spec} failed on {event} ({reason}); it is disabled "
                          "for the rest of this run")
                del self.active[spec]

    def want(self, event: str) -> bool:
        """Whether an active logger handles ``event`` (so that it is worth computing)."""
        return any(getattr(type(logger), event) is not getattr(Logger, event)
                   for logger in self.active.values())

    def finish(self, epoch: int, metrics: dict[str, Any], sample_rate: int,
               evaluation: Callable[[], dict[str, Any]]) -> None:
        """The end of a run: the confusion matrix and the worst-classified clips of
        ``evaluation()`` (called only when a logger takes figures or audio), then ``end``."""
        report = functools.cache(evaluation)
        if self.want("figure"):
            from esc50.core.plots import confusion_figure

            names = [row["class"] for row in report()["per_class"]]
            self.emit("figure", "confusion_matrix", confusion_figure(
                np.array(report()["confusion_matrix"]), names,
                f"final epoch on {report()['selection']}"), epoch)
        if self.want("audio"):
            from esc50.core.audio import load_clip

            for clip in report()["worst"][:EXAMPLES]:
                wav, _ = load_clip(Path(clip["path"]), sample_rate)
                self.emit("audio", f"worst_classified/{Path(clip['path']).stem}", wav.numpy(),
                          sample_rate,
                          f"true {clip['true']}, predicted {clip['predicted']} "
                          f"(p(true) = {clip['p_true']:.2f})")
        self.emit("end", metrics)
