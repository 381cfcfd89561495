"""`esc50 predict --timeline` output: a table printed window by window as each is scored (a live
stream is labelled as it arrives), then the segments; CSV (segments, or windows with
``--windows``, streamed); JSON; a PNG per input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import click

from esc50.commands.predict import audio_files
from esc50.commands.timeline import (SEGMENT_FIELDS, Timeline, Window, csv_line,
                                          segment_json, segment_row)
from esc50.core.data.stream import STDIN
from esc50.core.errors import Esc50Error, one_line
from esc50.core.results.folder import refuse_run_file
from esc50.core.results.plots import clock, figure_format, save

WINDOW_FIELDS = ["file", "start", "end", "rank", "class", "probability"]


def window_line(window: Window) -> str:
    top = "  ".join(f"{name} {p:.2f}" for name, p in window.top) or "(none reaches --min-prob)"
    return f"  {clock(window.start):>10} - {clock(window.end):<10}  {top}"


def segment_lines(timeline: Timeline) -> list[str]:
    if not timeline.segments:
        return [f"no segments in {timeline.source}: no window's top class reaches --min-prob "
                f"{timeline.min_prob:g}"]
    lines = [f"segments of {timeline.source} (consecutive windows with one top class):",
             f"  {'start':>10}   {'end':<10}  {'class':<20} {'mean':>5} {'max':>5} {'windows':>7}"]
    lines += [f"  {clock(s.start):>10} - {clock(s.end):<10}  {s.label:<20} "
              f"{s.mean_probability:>5.2f} {s.max_probability:>5.2f} {s.windows:>7}"
              for s in timeline.segments]
    return lines


def plot_paths(plot: str, files: list[Path]) -> dict[Path, Path]:
    """Where the figure of each input goes: ``plot`` itself for one input; for several,
    ``plot`` with each input's name added (its path from the inputs' common folder where two
    share a name: ``a/clip.wav`` and ``b/clip.wav`` give ``plot-a-clip.png`` and
    ``plot-b-clip.png``), so that no figure is written over another. Checked, with the format
    its suffix asks for, before any input is read."""
    out = Path(plot)
    figure_format(out, "--plot")
    refuse_run_file(out, "--plot")
    if len(files) == 1:
        return {files[0]: out}
    names = {path: "stdin" if path == STDIN else path.stem for path in files}
    if len(set(names.values())) < len(files):
        real = [p.resolve() for p in files if p != STDIN]
        common = Path(os.path.commonpath(real)) if real else Path()
        names = {path: "stdin" if path == STDIN else "-".join(
            path.resolve().relative_to(common).with_suffix("").parts) for path in files}
    return {path: out.with_name(f"{out.stem}-{name}{out.suffix}") for path, name in names.items()}


def print_timelines(model: Any, inputs: Any, paths: list[Path], top_k: int, hop: float | None,
                    min_prob: float, as_json: bool, as_csv: bool, window_rows: bool,
                    plot: str | None, rows: int | None = None) -> bool:
    """Print the timeline of each input in the chosen form; whether any input failed (its
    error is printed and the others still run)."""
    if window_rows and not as_csv:
        raise Esc50Error("--windows chooses the CSV rows: use it with --csv")
    files = audio_files(paths)
    plots = plot_paths(plot, files) if plot else {}
    failed, results = False, []
    if as_csv:
        click.echo(csv_line(WINDOW_FIELDS if window_rows else SEGMENT_FIELDS), nl=False)
    for path in files:
        source = inputs.name(path)
        on_window: Callable[[Window], None] | None = None
        if as_csv and window_rows:
            def on_window(window: Window, source: str = source) -> None:
                click.echo("".join(csv_line([source, f"{window.start:.3f}", f"{window.end:.3f}",
                                             rank, name, f"{p:.4f}"])
                                   for rank, (name, p) in enumerate(window.top, 1)), nl=False)
        elif not as_csv and not as_json:
            seconds = model.config.length_wav / model.sample_rate
            click.echo(f"{one_line(source)}: windows of {seconds:g} s ({model.description})")

            def on_window(window: Window) -> None:
                click.echo(window_line(window))
        try:
            timeline = model.timeline_of(inputs, path, hop, min_prob, top_k, on_window)
        except Esc50Error as exc:
            failed = True
            click.echo(f"error: {exc}", err=True)
            results.append({"file": source, "error": str(exc)})
            continue
        results.append(timeline.to_dict())
        if as_csv and not window_rows:
            click.echo("".join(csv_line(segment_row(source, segment_json(s)))
                               for s in timeline.segments),
                       nl=False)
        elif not as_csv and not as_json:
            click.echo("\n".join(segment_lines(timeline)))
        if plot:
            out = plots[path]
            save(timeline.plot(rows), out)
            click.echo(f"timeline plot written to {out}", err=True)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    return failed
