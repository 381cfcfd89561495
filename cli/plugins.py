"""`esc50 list-plugins` and `esc50 new-plugin`: the installed plugins, and a package to start
one from."""

from __future__ import annotations

import json
from pathlib import Path

import click

from esc50.cli.errors import user_errors


@click.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output.")
@click.option("--verbose", "-v", is_flag=True, help="also show where each plugin comes from.")
@click.option("--options", "show_options", is_flag=True,
              help="each plugin's options: name, type, default.")
@click.option("--strict", is_flag=True, help="exit with status 1 when a plugin is broken.")
@click.option("--refresh", is_flag=True, help="build the listing again instead of reading it "
              "from the cache (it is rebuilt by itself when a plugin package changes).")
@click.option("--wait", is_flag=True, help="wait for every model's parameter count (the first "
              "listing shows a count not ready within a few seconds as '...').")
@user_errors
def list_plugins(as_json: bool, verbose: bool, show_options: bool, strict: bool,
                 refresh: bool, wait: bool) -> None:
    """List every model, augmentation, featurizer, dataset and logger with its package,
    description and options."""
    from esc50.cli.listing import COUNTING, listing, render_options, render_table

    found = listing(refresh, wait)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        rows = found["plugins"]
        click.echo(render_options(rows) if show_options else render_table(rows))
        if found["trained"]:
            click.echo("\ntrained models (esc50 predict NAME FILE; no training needed):")
            for model in found["trained"]:
                click.echo(f"  {model['name']}: {model['description']} [licence: "
                           f"{model['licence']}; from {model['registered_by']}]")
        if verbose:
            click.echo("\nplugin sources:")
            for source in found["sources"]:
                click.echo(f"  {source['namespace']}: {source['module']} from "
                           f"{source['package']} {source['version']}")
        for problem in found["problems"]:
            click.echo(f"broken: {problem}")
        for warning in found["warnings"]:
            click.echo(f"warning: {warning}")
        counting = [r["id"] for r in rows if r.get("parameters") == COUNTING]
        if counting:
            click.echo(f"...: the parameters of {', '.join(counting)} are still being counted "
                       "(in the background, for the next listing; --wait waits for them)",
                       err=True)
    if strict and found["problems"]:
        raise SystemExit(1)


@click.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False),
              help="where to write the package folder esc50-NAME.")
@user_errors
def new_plugin(name: str, parent: str) -> None:
    """Write a working plugin package to start from: one model, one augmentation, a test."""
    from esc50.cli.skeleton import write_skeleton

    root = write_skeleton(name, Path(parent))
    click.echo(f"wrote {root}: pip install -e {root}, then esc50 list-plugins shows "
               f"{name}.meanpool and {name}.gain; run its test with python -m pytest {root}/tests")
