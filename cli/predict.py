"""`esc50 predict`: top classes of files, folders or standard input; --timeline says what
sounds when (:mod:`esc50.cli.timeline`)."""

from __future__ import annotations

import csv
import functools
import io
import json
import textwrap
from pathlib import Path
from typing import Any, Iterable

import click

from esc50.cli.errors import user_errors
from esc50.cli.options import CHECKPOINT_CHOICE, COUNT
from esc50.core.errors import Esc50Error, one_line


@click.command()
@click.argument("checkpoint", metavar="MODEL")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=COUNT, default=3, show_default=True, help="classes per file (per "
              "window with --timeline).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output (file, rank, class, "
              "probability; with --timeline: its segments, or --windows).")
@click.option("--timeline", is_flag=True, help="what sounds when: every window's start, end "
              "and top classes, and the segments of consecutive windows with one top class.")
@click.option("--hop", type=float, help="with --timeline: seconds between windows (default: "
              "half a window).")
@click.option("--min-prob", type=float, default=0.0, show_default=True, help="with --timeline: "
              "keep the classes (and segments) whose probability reaches this.")
@click.option("--windows", "window_rows", is_flag=True, help="with --timeline --csv: a row "
              "per window and class instead of a row per segment.")
@click.option("--plot", type=click.Path(dir_okay=False), help="with --timeline: a PNG of the "
              "top classes over time (one file: FILE; several: FILE with each input's name).")
@click.option("--rows", type=click.IntRange(min=1), help="with --plot: the N classes that lead "
              "the most windows (default: every class that leads one).")
@click.option("--rate", type=int, help="standard input (-) is raw PCM (signed 16-bit "
              "little-endian) at this rate, not WAV.")
@click.option("--channels", type=int, default=1, show_default=True,
              help="channels of raw PCM on standard input.")
@CHECKPOINT_CHOICE
@user_errors
def predict(checkpoint: str, files: tuple[str, ...], top_k: int, as_json: bool, as_csv: bool,
            timeline: bool, hop: float | None, min_prob: float, window_rows: bool,
            plot: str | None, rows: int | None, rate: int | None, channels: int,
            which: str) -> None:
    """Top classes with probabilities for audio files or folders (any length, rate, channels;
    - reads standard input), from a run or from a cross-validation's fold models together;
    --timeline says what sounds when."""
    from esc50.cli.timeline import print_timelines
    from esc50.commands import api
    from esc50.commands.timeline import check_settings

    if as_json and as_csv:
        raise Esc50Error("--json and --csv: choose one output format")
    if not timeline and (hop is not None or min_prob or window_rows or plot or rows):
        raise Esc50Error("--hop, --min-prob, --windows, --plot and --rows go with --timeline")
    model = api.load(checkpoint, which, warn=functools.partial(click.echo, err=True))
    check_settings(min_prob, top_k)  # every option once, before any input is read
    model.hop_samples(hop)
    inputs = model.audio_input(rate, channels)
    if model.is_ensemble:
        click.echo(f"scoring with {model.description}: their probabilities averaged", err=True)
    if model.trained is not None:
        click.echo(f"{model.trained.name}: licence of the weights: {model.trained.licence}",
                   err=True)
    paths = [Path(f) for f in files]
    if timeline:
        failed = print_timelines(model, inputs, paths, top_k, hop, min_prob, as_json, as_csv,
                                 window_rows, plot, rows)
    else:
        failed = print_predictions(model, inputs, paths, top_k, as_json, as_csv)
    if failed:
        raise SystemExit(1)


def print_predictions(model: Any, inputs: Any, paths: list[Path], top_k: int, as_json: bool,
                      as_csv: bool) -> bool:
    """The top classes of each file as text, JSON or CSV, printed as soon as the file is scored
    (a folder of thousands shows its first files at once, and an interruption keeps what was
    printed); whether any file failed."""
    from esc50.commands.predict import audio_files, predict_files

    results = predict_files(model.members, model.class_names, inputs, model.config.length_wav,
                            audio_files(paths, model.note), top_k, model.window_batch)
    failed = []
    if as_json:
        click.echo("[")
    elif as_csv:
        click.echo(csv_rows([["file", "rank", "class", "probability"]]), nl=False)
    for index, r in enumerate(results):
        if as_json:
            item = {"file": str(r.path), "error": r.error,
                    "top": [{"class": c, "probability": p} for c, p in r.top], "notes": r.notes}
            click.echo((",\n" if index else "") + textwrap.indent(json.dumps(item, indent=2), "  "),
                       nl=False)
        elif as_csv:
            click.echo(csv_rows([r.path, rank, name, f"{probability:.4f}"]
                                for rank, (name, probability) in enumerate(r.top, start=1)),
                       nl=False)
        else:
            top = "  ".join(f"{name} {probability:.2f}" for name, probability in r.top)
            name = one_line(str(r.path))
            click.echo(f"{name}: {top}" if r.error is None else f"{name}: error: {r.error}")
        if r.error:
            failed.append(r)
    if as_json:
        click.echo("\n]")
    for r in failed:
        click.echo(f"error: {r.error}", err=True)
    return bool(failed)


def csv_rows(rows: Iterable[list[Any]]) -> str:
    """``rows`` as CSV text (a name that needs it quoted)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()
