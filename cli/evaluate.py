"""`esc50 evaluate`: a trained model's figures on clips it never trained on."""

from __future__ import annotations

import functools
import json

import click

from esc50.cli.errors import user_errors
from esc50.cli.options import ALLOW_CHANGED_DATA, CHECKPOINT_CHOICE


@click.command()
@click.argument("checkpoint", metavar="MODEL")
@click.option("--data", help="dataset folder (default: the one the run was trained on).")
@click.option("--fold", type=int, help="evaluate on this fold (default: the run's validation "
              "split; an ensemble needs a fold none of its models trained on).")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output.")
@click.option("--training-clips", is_flag=True, help="score a fold holding clips the model "
              "trained on (refused otherwise); the figures are labelled training accuracy.")
@CHECKPOINT_CHOICE
@ALLOW_CHANGED_DATA
@user_errors
def evaluate(checkpoint: str, data: str | None, fold: int | None, as_json: bool, which: str,
             allow_changed_data: bool, training_clips: bool) -> None:
    """Accuracy, macro F1, per-class precision/recall and confusion matrix of a trained run
    (its final epoch unless --checkpoint best), or of a cross-validation's fold models together
    (an ensemble) on a fold none of them trained on."""
    from esc50.commands import api

    warn = functools.partial(click.echo, err=True)
    report = api.load(checkpoint, which, warn=warn).evaluate(data, fold, allow_changed_data,
                                                             warn=warn,
                                                             training_clips=training_clips)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['checkpoint']} (epoch {report['epoch']}) on {report['selection']} of "
               f"{report['data']}: {report['clips']} clips")
    scope = "training " if report["training_clips"] else ""
    click.echo(f"{scope}accuracy {report['accuracy']:.3f}   {scope}macro F1 "
               f"{report['macro_f1']:.3f}\n")
    for member in report.get("members", []):
        click.echo(f"  alone: {member['run']}: accuracy {member['accuracy']:.3f}")
    click.echo(f"{'class':<20} {'precision':>9} {'recall':>7} {'f1':>6} {'clips':>6}")
    for row in report["per_class"]:
        if row["support"]:
            click.echo(f"{row['class']:<20} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                       f"{row['f1']:>6.3f} {row['support']:>6}")
    names = [row["class"] for row in report["per_class"]]
    confusions = sorted(((n, names[t], names[p]) for t, r in enumerate(report["confusion_matrix"])
                         for p, n in enumerate(r) if n and p != t), reverse=True)[:10]
    if confusions:
        click.echo("\nmost frequent confusions (true -> predicted; --json has the full matrix):")
        for count, true, pred in confusions:
            click.echo(f"  {true} -> {pred}: {count}")
