"""`esc50 tune`: settings searched on the training folds only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from esc50.cli.errors import user_errors
from esc50.cli.options import COUNT, config_arguments, train_options
from esc50.core.errors import Esc50Error


@click.command()
@train_options
@click.option("--val-fold", type=int, help="the outer fold: left out of every trial (never "
              "read), scored once by --final.")
@click.option("--name", required=True, help="the study: its folder under --output-dir and its "
              "name in the storage.")
@click.option("--space", "spaces", multiple=True, metavar="KEY=low:high[:log] | KEY=a|b|c",
              help="a setting to search (a TaskConfig key or plugin.option); repeatable.")
@click.option("--space-file", type=click.Path(dir_okay=False),
              help="a TOML file whose [space] table gives the settings to search.")
@click.option("--trials", type=COUNT, default=10, show_default=True,
              help="trials this command runs (the study keeps every earlier one).")
@click.option("--jobs", type=COUNT, default=1, show_default=True,
              help="worker processes on this machine sharing the study.")
@click.option("--inner-folds", type=COUNT, default=1, show_default=True,
              help="inner folds each trial is scored on (their mean).")
@click.option("--storage", help="a database URL Optuna accepts (default: a SQLite file in the "
              "study folder); workers on several machines share one study through it.")
@click.option("--show", is_flag=True, help="print the best settings so far and write them as "
              "best.toml (for esc50 train/cv --config).")
@click.option("--final", is_flag=True, help="train once with the best settings and score the "
              "outer fold (only once per study).")
@user_errors
def tune(config_file: str | None, augs: tuple[str, ...], settings: tuple[str, ...],
         no_progress: bool, name: str, spaces: tuple[str, ...], space_file: str | None,
         trials: int, jobs: int, inner_folds: int, storage: str | None, show: bool,
         final: bool, **flags: Any) -> None:
    """Search settings on the training folds only (Optuna; pip install 'esc50[tune]'): the
    outer fold (--val-fold) is left out of every trial and scored once, by --final."""
    from esc50.commands import api
    from esc50.commands import tune as search

    if show or final:
        root = Path(flags.get("output_dir") or "runs") / name
        found = search.load_search(root, name, storage)
        result = search.final_run(found, click.echo) if final else search.summary(found)
    else:
        result = api.tune(list(spaces), name=name, trials=trials, jobs=jobs,
                          inner_folds=inner_folds, storage=storage, space_file=space_file,
                          log=click.echo, **config_arguments(config_file, augs, settings,
                                                             no_progress, flags))
    best = result["best"]
    click.echo(f"trials: {', '.join(f'{n} {state}' for state, n in result['trials'].items())}")
    if best is None:
        failed = result["trials"].get("fail", 0)
        if failed and not (show or final):
            raise Esc50Error(f"every trial failed ({failed}): see each one's error above")
        click.echo("no trial has finished yet")
        return
    click.echo(f"best: trial {best['trial']}, inner accuracy {best['inner_accuracy']:.3f} on "
               f"fold(s) {', '.join(map(str, best['inner_folds']))} (outer fold "
               f"{best['outer_fold']} untouched by the search): "
               f"{search.shown(best['settings'])}")
    click.echo(f"written to {result['config']}: esc50 train --config {result['config']}")
    if result.get("final"):
        click.echo(f"outer fold {best['outer_fold']} (scored once): "
                   f"{result['final']['accuracy']:.3f} by {result['final']['run']}")
