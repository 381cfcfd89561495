"""`esc50 report`: a Markdown comparison of runs (like the report's table) with PNG figures."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

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


def write_report(paths: list[Path], out_dir: Path, registry: Registry,
                 log: Callable[[str], None] = print) -> str:
    """Write ``report.md``, learning curves and confusion matrices into ``out_dir``; return the
    Markdown. Every figure is the final epoch's (``last.pt``): nothing chosen on validation. A
    confusion matrix needs the run's data unchanged; without it the figure is skipped."""
    runs = find_runs(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["| run | model | parameters | epochs | val acc (final epoch) | s / epoch | split |",
             "|---|---|---:|---:|---:|---:|---|"]
    figures = []
    for run_dir in runs:
        run = Run.open(run_dir)
        m, label = run.metrics, run_label(run_dir)
        try:
            lines.append(f"| {label} | {m['model']} | {m['parameters']:,} | {m['epochs']} | "
                         f"{m['final_val_accuracy']:.1%} | {m['seconds_per_epoch']:.1f} | "
                         f"{m['split']} |")
        except (KeyError, TypeError, ValueError) as exc:
            raise Esc50Error(f"{run_dir / 'metrics.json'} lacks a valid {exc}: not a metrics "
                             "file esc50 wrote") from None
        curves = out_dir / f"{label}-curves.png"
        plot_learning_curves(run.history, f"{label} ({m['model']})", curves)
        figures.append(f"![{label} learning curves]({curves.name})")
        try:
            result = load(run_dir, registry=registry).evaluate(warn=log)
        except Esc50Error as exc:
            log(f"{label}: confusion matrix skipped ({exc})")
            continue
        confusion = out_dir / f"{label}-confusion.png"
        names = [row["class"] for row in result["per_class"]]
        plot_confusion_matrix(np.array(result["confusion_matrix"]), names,
                              f"{label}: final epoch on {result['selection']}", confusion)
        figures.append(f"![{label} confusion matrix]({confusion.name})")
    markdown = "\n".join(["# esc50 run comparison", "", *lines, "", *figures, ""])
    write_text(out_dir / "report.md", markdown)
    return markdown
