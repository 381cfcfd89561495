"""`esc50 analyze`: a folder tree of recordings into a tree of results (see
:mod:`esc50.commands.analyze.run`)."""

from __future__ import annotations

import functools

import click

from esc50.cli.errors import user_errors
from esc50.cli.options import COUNT


@click.command()
@click.argument("model", metavar="MODEL")
@click.argument("folder", type=click.Path(exists=True), metavar="DIR")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="the results folder: a result file per recording, mirroring DIR, the "
              "combined table (segments.csv), failed.csv and the summary.")
@click.option("--format", "formats", multiple=True,
              type=click.Choice(["csv", "json", "audacity", "raven"]),
              help="result files per recording (repeat for several; default csv): csv, json, "
              "audacity (label track), raven (selection table).")
@click.option("--classes", help="comma-separated classes whose segments are kept (default: "
              "all), e.g. dog,siren.")
@click.option("--min-prob", type=float, default=0.0, show_default=True,
              help="keep the classes (and segments) whose probability reaches this.")
@click.option("--hop", type=float, help="seconds between windows (default: half a window).")
@click.option("--top-k", type=COUNT, default=3, show_default=True, help="classes per window.")
@click.option("--jobs", type=COUNT, default=1, show_default=True,
              help="worker processes on this machine (each with its share of the cores; "
              "as many as fit in memory, with a note when fewer).")
@click.option("--shard", metavar="I/N", help="this machine's share of the recordings (1-based); "
              "the same command with 1/N ... N/N into one --out covers each recording once "
              "(under torchrun: its RANK and WORLD_SIZE).")
@click.option("--segments", type=click.Path(file_okay=False), help="a folder for the most "
              "confident detections of each class as audio clips and an HTML page to review "
              "them (index.html).")
@click.option("--per-class", type=COUNT, default=10, show_default=True,
              help="detections per class with --segments.")
@click.option("--embeddings", is_flag=True, help="also each window's embedding (the model's "
              "last hidden layer): <recording>.embeddings.npy with <recording>.windows.csv.")
@click.option("--each-window", is_flag=True, help="score every window alone, as predict "
              "--timeline does (about 2x slower), instead of pooling neighbouring windows from "
              "one pass of a model that supports it (docs/analyze.md, \"Speed\").")
@click.option("--no-progress", is_flag=True, help="no progress bar (for logs).")
@user_errors
def analyze(model: str, folder: str, out: str, formats: tuple[str, ...], classes: str | None,
            min_prob: float, hop: float | None, top_k: int, jobs: int, shard: str | None,
            segments: str | None, per_class: int, embeddings: bool, each_window: bool,
            no_progress: bool) -> None:
    """Label every recording under DIR (any format soundfile reads) with MODEL (a run, a
    cross-validation folder or a trained model's name): a result file per recording, the
    combined table and a summary. Running it again continues where it stopped."""
    from esc50.commands.analyze.run import analyze as run_analysis
    from esc50.commands.analyze.summary import summary_lines

    summary = run_analysis(model, folder, out, formats=list(formats),
                           classes=[c.strip() for c in classes.split(",") if c.strip()]
                           if classes else None, min_prob=min_prob, hop=hop, top_k=top_k,
                           jobs=jobs, shard=shard, segments=segments, per_class=per_class,
                           embeddings=embeddings, each_window=each_window,
                           log=functools.partial(click.echo, err=True),
                           progress=not no_progress)
    click.echo("\n".join(summary_lines(summary)[:2]))
    click.echo(f"results in {out}: segments.csv (every segment), summary.txt, summary.json"
               + (", failed.csv" if summary["failed"] else ""))
    if summary["failures"] or summary["unlisted"] or summary["this_run"]["not_done"]:
        raise SystemExit(1)
