"""`esc50 report`: a Markdown comparison of runs (like the report's table) with PNG figures."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from esc50.commands.comparison import COLUMNS, collect, table_row
from esc50.commands.html_report import render_html
from esc50.core.files.write import output_folder, write_text
from esc50.core.results.plots import plot_confusion_matrix, plot_learning_curves
from esc50.core.plugin_api.registry import Registry


def write_report(paths: list[Path], out_dir: Path, registry: Registry,
                 log: Callable[[str], None] = print, html: bool = False) -> str:
    """Write ``report.md``, learning curves and confusion matrices into ``out_dir`` (and with
    ``html``, the self-contained ``report.html``); return the Markdown. Every figure is the final
    epoch's (``last.pt``): nothing chosen on validation. A confusion matrix needs the run's data
    unchanged; without it the figure is skipped."""
    reports = collect(paths, registry, log)
    output_folder(out_dir, "report folder (--out)")
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
        write_text(out_dir / "report.html", render_html(reports, out_dir))
    return markdown
