"""`esc50 train` and `esc50 cv`: a run, or one run per held-out fold."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import click

from esc50.cli.errors import user_errors
from esc50.cli.options import (ALLOW_CHANGED_DATA, COUNT, RESUME_FLAGS, TRAIN_FLAGS,
                               config_arguments, train_options)
from esc50.core.config import SPLITS
from esc50.core.errors import Esc50Error


@click.command()
@train_options
@click.option("--split", type=click.Choice(SPLITS), help=TRAIN_FLAGS["split"])
@click.option("--val-fold", type=int, help=TRAIN_FLAGS["val_fold"])
@click.option("--run-name", help=TRAIN_FLAGS["run_name"])
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="continue an interrupted run from its last checkpoint, with its own config "
              "and split; --data may point to a moved dataset, --epochs extends the run.")
@ALLOW_CHANGED_DATA
@user_errors
def train(config_file: str | None, augs: tuple[str, ...], settings: tuple[str, ...],
          no_progress: bool, resume_dir: str | None, allow_changed_data: bool,
          **flags: Any) -> None:
    """Train a model; writes config, split, checkpoints, history, metrics and curves to a run
    folder. The accuracy it reports is the final epoch's."""
    from esc50.commands import api
    from esc50.core.training.distributed import is_main_process

    if resume_dir:
        changing = [f"--{'logger' if k == 'loggers' else k.replace('_', '-')}"
                    for k, v in flags.items() if v not in (None, ()) and k not in RESUME_FLAGS]
        changing += ["--config"] * bool(config_file) + ["--aug"] * bool(augs) + \
            ["--set"] * bool(settings)
        if changing:
            raise Esc50Error(f"--resume continues {resume_dir} with its own config; "
                             f"{', '.join(changing)} would change the run: start a new run "
                             "instead (only --data and --epochs go with --resume)")
        run = api.resume(resume_dir, flags.get("data"), flags.get("epochs"), allow_changed_data,
                         log=click.echo)
    else:
        run = api.train(log=click.echo, **config_arguments(config_file, augs, settings,
                                                           no_progress, flags))
    if not is_main_process():
        return
    metrics = run.metrics
    selected = metrics["selected_on_validation"]
    if selected is None:
        click.echo(f"trained on every clip after {metrics['epochs']} epochs "
                   f"({metrics['weights']} weights; {metrics['split']}); run saved in "
                   f"{run.run_dir}")
    else:
        click.echo(f"final validation accuracy {metrics['final_val_accuracy']:.3f} after "
                   f"{metrics['epochs']} epochs ({metrics['weights']} weights; "
                   f"{metrics['split']}); run saved in {run.run_dir}")
        click.echo(f"(best.pt: epoch {selected['epoch']}, chosen on the same validation clips, "
                   "so its accuracy there is optimistic; commands use last.pt unless told "
                   "--checkpoint best)")
    click.echo(next_steps(run.run_dir))


def next_steps(target: Path) -> str:
    """What to do next with a run (or a cross-validation's fold models, used together) just
    written."""
    run = shlex.quote(str(target))
    return "\n".join([
        "next:",
        f"  esc50 predict {run} recording.wav --timeline   # what sounds when, in a recording "
        "of any length",
        f"  esc50 report {run} --html --out {shlex.quote(str(target / 'report'))}   # curves, "
        "confusions, the worst clips to listen to",
        f"  esc50 export {run} --format onnx   # one file for another device (--quantize int8)",
        f"  model card: {target / 'MODEL_CARD.md'}"])


@click.command()
@train_options
@click.option("--name", required=True, help="folder under --output-dir for the fold runs.")
@click.option("--folds", help="comma-separated folds to hold out (default: every fold present).")
@click.option("--jobs", type=COUNT, default=1, show_default=True,
              help="folds trained at once, each in its own process (one GPU shared, or the CPU "
              "cores split between them); the decoded audio is shared through the disk cache.")
@click.option("--k", "k_folds", type=int, help="for a dataset without folds (plugins.folder, a "
              "manifest without a fold column): cross-validate over K grouped, stratified folds.")
@ALLOW_CHANGED_DATA
@user_errors
def cv(config_file: str | None, augs: tuple[str, ...], settings: tuple[str, ...],
       no_progress: bool, name: str, folds: str | None, allow_changed_data: bool,
       k_folds: int | None, jobs: int, **flags: Any) -> None:
    """Cross-validation: one model per held-out fold, each scored at its final epoch;
    re-running with the same settings skips finished folds and resumes interrupted ones."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise Esc50Error("esc50 cv runs in one process; under torchrun, train the folds one by "
                         "one with `esc50 train --val-fold N`")
    from esc50.commands import api

    try:
        fold_list = [int(f) for f in folds.split(",")] if folds else None
    except ValueError:
        raise Esc50Error(f"--folds {folds!r}: expected comma-separated fold numbers") from None
    result = api.cv(name=name, folds=fold_list, allow_changed_data=allow_changed_data,
                    log=click.echo, jobs=jobs,
                    **config_arguments(config_file, augs, settings, no_progress,
                                       {**flags, "k_folds": k_folds}))
    summary = result.summary
    per_fold = ", ".join(f"fold {k}: {v:.3f}" for k, v in summary["folds"].items())
    spread = (f" +- {summary['std_accuracy']:.3f} ({summary['std']})"
              if summary["std_accuracy"] is not None else "")
    click.echo(f"{per_fold}\nmean accuracy {summary['mean_accuracy']:.3f}{spread} over "
               f"{len(summary['folds'])} folds, each at its final epoch")
    click.echo(next_steps(result.root))
