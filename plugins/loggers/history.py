"""The run folder's ``history.csv`` (a row per epoch: losses, accuracies, learning rate, steps,
seconds), written as a logger: every run has it, and ``esc50 report``, the Python API and the
learning curves read it. Each write replaces the whole file atomically, so it always holds whole
epochs; a resumed run rewrites it from its checkpoint's history first."""

from __future__ import annotations

from pathlib import Path

from esc50 import Logger, RunStart, hookimpl
from esc50.core.results.folder import write_history

ESC50_PLUGIN_API = 4


class History(Logger):
    """history.csv in the run folder: one row per epoch (every run writes it)."""

    name = "history"

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self.rows: list[dict[str, float]] = []

    def start(self, run: RunStart) -> None:
        self.run_dir, self.rows = run.run_dir, list(run.history)
        write_history(self.run_dir, self.rows)

    def epoch(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        write_history(self.run_dir, self.rows)


@hookimpl
def register_loggers(register):
    register(History)
