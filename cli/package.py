"""`esc50 package`: a finished run as a trained model a plugin package ships by name."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from esc50.cli.errors import user_errors


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False), metavar="RUN")
@click.option("--name", required=True, help="the name users will give the model (lower-case "
              "letters, digits, '.', '_', '-'), e.g. esc50-rescnn.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="the folder to "
              "write (inside the plugin package that will register it).")
@click.option("--cv", "cross_validation", type=click.Path(exists=True, file_okay=False),
              help="a cross-validation folder of the same settings: its figures are the card's "
              "estimate for unseen clips.")
@click.option("--data", help="dataset folder (default: the run's): scored to check float16 "
              "and to time the model.")
@click.option("--float32", "full_precision", is_flag=True, help="keep float32 weights (by "
              "default float16, where that changes no prediction on the dataset's clips).")
@click.option("--note", default="", help="what the card should say of the data besides its "
              "folder (a re-encoded copy, say).")
@user_errors
def package(run_dir: str, name: str, out: str, cross_validation: str | None, data: str | None,
            full_precision: bool, note: str) -> None:
    """A finished run as a trained model a plugin package ships by name: model.pt, LICENSE,
    MODEL_CARD.md and its training record (register it with register_trained_models)."""
    from esc50.commands.api import registry_with_warnings
    from esc50.commands.package import package_run

    echo = functools.partial(click.echo, err=True)
    done = package_run(Path(run_dir), Path(out), name, registry_with_warnings(echo),
                       not full_precision, Path(cross_validation) if cross_validation else None,
                       data, note, echo)
    click.echo(f"wrote {out} ({done.precision}, {done.path.stat().st_size / 2**20:.1f} MiB); "
               f"register it with register(\"{name}\", <path of {done.path.name}>, "
               f"\"sha256:{done.sha256}\", ...)")
