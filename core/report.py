"""`esc50 report`: a Markdown comparison of runs (like the report's table) with PNG figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from esc50.core.errors import Esc50Error
from esc50.core.api import Run, load
from esc50.core.files import write_text
from esc50.core.plots import plot_confusion_matrix, plot_learning_curves
from esc50.core.registry import Registry


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories among ``paths``; a cross-validation folder stands for its fold runs."""
    runs = []
    for path in paths:
        if (path / "metrics.json").is_file():
            runs.append(path)
        elif folds := sorted(p for p in path.glob("fold-*") if (p / "metrics.json").is_file()):
            runs += folds
        else:
            raise Esc50Error(f"{path} is not a run directory (no metrics.json in it or in fold-*)")
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
    """Every run among ``paths``, evaluated at its final epoch (``last.pt``)."""
    reports = []
    for run_dir in find_runs(paths):
        run, label = Run.open(run_dir), run_label(run_dir)
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
                f"{m['final_val_accuracy']:.1%}", f"{m['seconds_per_epoch']:.1f}", m["split"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise Esc50Error(f"{report.run_dir / 'metrics.json'} lacks a valid {exc}: not a metrics "
                         "file esc50 wrote") from None


COLUMNS = ["run", "model", "parameters", "epochs", "val acc (final epoch)", "s / epoch", "split"]


def write_report(paths: list[Path], out_dir: Path, registry: Registry,
                 log: Callable[[str], None] = print, html: bool = False) -> str:
    """Write ``report.md``, learning curves and confusion matrices into ``out_dir`` (and with
    ``html``, the self-contained ``report.html``); return the Markdown. Every figure is the final
    epoch's (``last.pt``): nothing chosen on validation. A confusion matrix needs the run's data
    unchanged; without it the figure is skipped."""
    reports = collect(paths, registry, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---:|---:|---:|---:|---|"]
    figures = []
    for report in reports:
        label, model = report.label, report.run.metrics.get("model")
        lines.append("| " + " | ".join([label, *table_row(report)]) + " |")
        curves = out_dir / f"{label}-curves.png"
        plot_learning_curves(report.run.history, f"{label} ({model})", curves)
        figures.append(f"![{label} learning curves]({curves.name})")
        if report.evaluation is None:
            continue
        result = report.evaluation
        confusion = out_dir / f"{label}-confusion.png"
        names = [row["class"] for row in result["per_class"]]
        plot_confusion_matrix(np.array(result["confusion_matrix"]), names,
                              f"{label}: final epoch on {result['selection']}", confusion)
        figures.append(f"![{label} confusion matrix]({confusion.name})")
    markdown = "\n".join(["# esc50 run comparison", "", *lines, "", *figures, ""])
    write_text(out_dir / "report.md", markdown)
    if html:
        from esc50.core.html_report import render_html

        write_text(out_dir / "report.html", render_html(reports))
    return markdown
