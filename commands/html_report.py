"""`esc50 report --html`: one self-contained HTML page comparing runs (no scripts, no network: the
figures are inline SVG and PNG, the clips inline Ogg Vorbis), with, per run, its learning curves,
a confusion matrix whose cells name themselves on hover, per-class accuracy sorted from the
worst, and the worst-classified validation clips to listen to, with their spectrograms, true and
predicted classes. Every figure is the final epoch's (``last.pt``)."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from esc50.commands.comparison import COLUMNS, RunReport, table_row
from esc50.core.data.audio import load_clip
from esc50.core.results.card import CARD
from esc50.core.results.metrics import WORST_SHOWN
from esc50.core.results.plots import learning_curves, png_bytes, spectrogram_figure, svg_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; }
table.confusion td { width: 14px; height: 14px; padding: 0; border: 1px solid #fff; }
table.confusion td:hover { outline: 2px solid #d62728; }
table.confusion th { font-size: 9px; font-weight: normal; white-space: nowrap; padding: 0 4px; }
.bar { background: #4c78a8; height: 10px; display: inline-block; }
.clip { display: inline-block; vertical-align: top; margin: 0 1em 1em 0; width: 400px; }
.clip img { width: 400px; }
section { border-top: 2px solid #4c78a8; margin-top: 2em; }
"""


def render_html(reports: list[RunReport], out_dir: Path) -> str:
    """The whole page for the runs of one comparison, to be written into ``out_dir`` (links to
    the runs' model cards are relative to it)."""
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>"
                                    for cell in [r.label, *table_row(r)]) + "</tr>"
                   for r in reports)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = [f"<h1>esc50 run comparison</h1><table><tr>{head}</tr>{rows}</table>",
            "<p>Every figure is the final epoch's (last.pt), on each run's validation clips: "
            "nothing here is chosen on them.</p>"]
    body += [run_section(report, out_dir) for report in reports]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>esc50 run comparison</title><style>" + STYLE + "</style></head><body>"
            + "".join(body) + "</body></html>\n")


def run_section(report: RunReport, out_dir: Path) -> str:
    label = html.escape(report.label)
    parts = [f"<section id=\"{label}\"><h2>{label}</h2>"]
    card = report.run_dir / CARD
    if card.is_file():
        link = Path(os.path.relpath(card.resolve(), out_dir.resolve())).as_posix()
        parts.append(f"<p><a href=\"{html.escape(link)}\">Model card</a> (the model, its data "
                     "and their licence, results, compute, how to reproduce it, its limits)</p>")
    parts += [
             "<h3>Learning curves</h3>",
             svg_text(learning_curves(report.run.history, report.label))]
    result = report.evaluation
    if result is None:
        parts.append("<p>No confusion matrix or clips: the run's data is not there unchanged "
                     "(see the command's notes).</p>")
    else:
        names = [row["class"] for row in result["per_class"]]
        parts += [f"<h3>Confusion matrix ({html.escape(result['selection'])}, accuracy "
                  f"{result['accuracy']:.1%}; hover a cell)</h3>",
                  confusion_table(np.array(result["confusion_matrix"]), names),
                  "<h3>Per-class accuracy, worst first</h3>", per_class_table(result["per_class"]),
                  "<h3>Worst-classified validation clips</h3>",
                  "".join(clip_card(clip, report.run.config.sample_rate)
                          for clip in result["worst"][:WORST_SHOWN])]
    return "".join(parts) + "</section>"


def confusion_table(matrix: np.ndarray, names: list[str]) -> str:
    """Rows: true class; columns: predicted; shade: share of the true class's clips."""
    totals = matrix.sum(axis=1)
    cells = []
    for i, true in enumerate(names):
        row = [f"<th>{html.escape(true)}</th>"]
        for j, predicted in enumerate(names):
            share = matrix[i, j] / totals[i] if totals[i] else 0.0
            title = (f"true {true}, predicted {predicted}: {int(matrix[i, j])} of "
                     f"{int(totals[i])} clips ({share:.0%})")
            row.append(f"<td title=\"{html.escape(title)}\" "
                       f"style=\"background: rgba(33, 113, 181, {share:.3f})\"></td>")
        cells.append("<tr>" + "".join(row) + "</tr>")
    return ("<p>Rows: true class; columns: predicted class, in the same order.</p>"
            "<table class=\"confusion\">" + "".join(cells) + "</table>")


def per_class_table(per_class: list[dict[str, Any]]) -> str:
    rows = []
    for row in sorted(per_class, key=lambda r: (r["recall"], r["class"])):
        width = round(200 * row["recall"])
        rows.append(f"<tr><td>{html.escape(row['class'])}</td><td class=\"num\">"
                    f"{row['recall']:.0%}</td><td><span class=\"bar\" style=\"width: "
                    f"{width}px\"></span></td><td class=\"num\">{row['support']}</td></tr>")
    return ("<table><tr><th>class</th><th>accuracy</th><th></th><th>clips</th></tr>"
            + "".join(rows) + "</table>")


def clip_card(clip: dict[str, Any], sample_rate: int) -> str:
    """A clip's player (inline Ogg Vorbis), spectrogram, true and predicted class."""
    path = Path(clip["path"])
    wav, _ = load_clip(path, sample_rate)
    audio = wav.numpy()
    encoded = io.BytesIO()
    sf.write(encoded, audio, sample_rate, format="OGG", subtype="VORBIS")
    sound = base64.b64encode(encoded.getvalue()).decode()
    image = base64.b64encode(png_bytes(spectrogram_figure(audio, sample_rate, path.name))).decode()
    return (f"<div class=\"clip\"><p><b>{html.escape(path.name)}</b>: true "
            f"<b>{html.escape(clip['true'])}</b>, predicted <b>{html.escape(clip['predicted'])}"
            f"</b> (p(true) = {clip['p_true']:.2f})</p>"
            f"<audio controls preload=\"metadata\" src=\"data:audio/ogg;base64,{sound}\"></audio>"
            f"<img alt=\"spectrogram of {html.escape(path.name)}\" "
            f"src=\"data:image/png;base64,{image}\"></div>")
