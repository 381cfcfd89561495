"""Passing a run's events (start, metrics every few steps and every epoch, figures, audio
examples, the end) to its loggers (:class:`esc50.core.plugin_api.contracts.Logger` plugins:
TensorBoard, the history CSV, MLflow, ...).

Only the main process logs. A logger can neither end a run nor change its results: it receives
copies of what the run computes (a logger that edits the row it is given changes nothing
else), and one that raises, or calls ``sys.exit``, is reported once, on one line naming it,
and disabled for the rest of the run. Loggers are not recorded as plugins the run needs."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure

from esc50.core.plugin_api.contracts import Logger
from esc50.core.results.metrics import WORST_SHOWN
from esc50.core.results.plots import confusion_figure

# The run folder's history.csv is written by this built-in logger, which every run has.
HISTORY_LOGGER = "plugins.history"


class Loggers:
    """The run's loggers by spec; :meth:`emit` passes an event to each, and disables (with one
    warning) a logger that fails."""

    def __init__(self, loggers: dict[str, Logger], warn: Callable[[str], None]) -> None:
        self.active, self.warn = dict(loggers), warn

    def emit(self, event: str, *args: Any) -> None:
        """Call ``event`` on every active logger, each with its own copy of ``args`` (figures
        aside: they are drawn for the occasion)."""
        for spec, logger in list(self.active.items()):
            try:
                getattr(logger, event)(*(a if isinstance(a, Figure) else copy.deepcopy(a)
                                         for a in args))
            except (Exception, SystemExit) as exc:  # a logger must never end the run
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                self.warn(f"warning: logger {spec} failed on {event} ({reason}); it is disabled "
                          "for the rest of this run")
                del self.active[spec]

    def want(self, event: str) -> bool:
        """Whether an active logger handles ``event`` (so that it is worth computing)."""
        return any(getattr(type(logger), event) is not getattr(Logger, event)
                   for logger in self.active.values())

    def finish(self, epoch: int, metrics: dict[str, Any], sample_rate: int,
               evaluation: Callable[[], dict[str, Any]] | None,
               audio: Callable[[dict[str, Any]], np.ndarray] | None) -> None:
        """The end of a run: the confusion matrix and the :data:`WORST_SHOWN` worst-classified
        clips of ``evaluation()`` (called only when a logger takes figures or audio; ``audio``
        gives a listed clip's samples; both None when the run held no clips out), then
        ``end``."""
        if evaluation is None or audio is None:
            self.emit("end", metrics)
            return
        report = functools.cache(evaluation)
        if self.want("figure"):
            names = [row["class"] for row in report()["per_class"]]
            self.emit("figure", "confusion_matrix", confusion_figure(
                np.array(report()["confusion_matrix"]), names,
                f"final epoch on {report()['selection']}"), epoch)
        if self.want("audio"):
            for clip in report()["worst"][:WORST_SHOWN]:
                self.emit("audio", f"worst_classified/{Path(clip['path']).stem}", audio(clip),
                          sample_rate, f"true {clip['true']}, predicted {clip['predicted']} "
                          f"(p(true) = {clip['p_true']:.2f})")
        self.emit("end", metrics)
