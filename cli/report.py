"""`esc50 report`: runs compared in Markdown and PNGs, or one HTML page."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from esc50.cli.errors import user_errors


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="report", show_default=True, help="folder for report.md and PNGs.")
@click.option("--html", "as_html", is_flag=True,
              help="also report.html: one self-contained page with the clips to listen to.")
@user_errors
def report(runs: tuple[str, ...], out: str, as_html: bool) -> None:
    """Compare runs: a Markdown table plus learning-curve and confusion-matrix PNGs; with
    --html also one self-contained page to look at and listen to."""
    from esc50.commands.api import registry_with_warnings
    from esc50.commands.report import write_report

    warn = functools.partial(click.echo, err=True)
    markdown = write_report([Path(r) for r in runs], Path(out), registry_with_warnings(warn),
                            log=lambda line: click.echo(f"note: {line}", err=True),
                            html=as_html)
    click.echo(markdown)
    click.echo(f"written to {Path(out) / 'report.md'}"
               + (f" and {Path(out) / 'report.html'}" if as_html else ""))
