"""The runs of one comparison (``esc50 report``): which folders are runs, their labels, their
final-epoch evaluation, and the table row of each, shared by the Markdown and HTML reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from esc50.commands.api import Run, load
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import Registry


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories among ``paths``; a folder of runs (a cross-validation's ``fold-*``, a
    study's ``trial-*`` and ``final``) stands for the runs in it."""
    runs = []
    for path in paths:
        if (path / "metrics.json").is_file():
            runs.append(path)
        elif inside := sorted(p for p in path.iterdir() if (p / "metrics.json").is_file()):
            runs += inside
        else:
            raise Esc50Error(f"{path} is not a run directory (no metrics.json in it or in the "
                             "folders in it)")
    return runs


def run_label(run_dir: Path) -> str:
    return f"{run_dir.parent.name}-{run_dir.name}" if run_dir.name.startswith("fold-") \
        else run_dir.name


@dataclass
class RunReport:
    """One run of a comparison: its folder, label, metrics and history, and its final epoch's
    evaluation on its validation clips (None when its data is not there unchanged)."""

    run_dir: Path
    label: str
    run: Run
    evaluation: dict[str, Any] | None


def collect(paths: list[Path], registry: Registry,
            log: Callable[[str], None] = print) -> list[RunReport]:
    """Every run among ``paths``, evaluated at its final epoch (``last.pt``). Labels (which name
    the figure files) are made unique: two runs named alike get ``-2``, ``-3``, ..."""
    reports: list[RunReport] = []
    taken: set[str] = set()
    for run_dir in find_runs(paths):
        run, label = Run.open(run_dir), run_label(run_dir)
        label = next(f"{label}-{n}" if n > 1 else label for n in range(1, len(taken) + 2)
                     if (f"{label}-{n}" if n > 1 else label) not in taken)
        taken.add(label)
        try:
            evaluation = load(run_dir, registry=registry).evaluate(warn=log)
        except Esc50Error as exc:
            log(f"{label}: confusion matrix skipped ({exc})")
            evaluation = None
        reports.append(RunReport(run_dir, label, run, evaluation))
    return reports


def table_row(report: RunReport) -> list[str]:
    """model, parameters, epochs, final accuracy, s / epoch and split of a run, as text."""
    m = report.run.metrics
    try:
        return [m["model"], f"{m['parameters']:,}", str(m["epochs"]),
                "-" if m["final_val_accuracy"] is None else f"{m['final_val_accuracy']:.1%}",
                f"{m['seconds_per_epoch']:.1f}", m["split"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise Esc50Error(f"{report.run_dir / 'metrics.json'} lacks a valid {exc}: not a metrics "
                         "file esc50 wrote") from None


COLUMNS = ["run", "model", "parameters", "epochs", "val acc (final epoch)", "s / epoch", "split"]
