"""`esc50 weights`: published weight files by name, and the trained models plugins ship."""

from __future__ import annotations

import json

import click

from esc50.cli.errors import user_errors


@click.group()
def weights() -> None:
    """Published weight files known by name (checkpoint=NAME): list, download, verify, path."""


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output.")
@user_errors
def weights_list(as_json: bool) -> None:
    """Every weight file the installed plugins know, whether it is cached, and the trained
    models they ship."""
    from esc50.commands.weights import trained_rows, weights_rows
    from esc50.core.plugin_api.registry import load_registry

    registry = load_registry()
    rows, trained = weights_rows(registry), trained_rows(registry)
    if as_json:
        click.echo(json.dumps([{"kind": "weights file", **row} for row in rows]
                              + [{"kind": "trained model", **row} for row in trained], indent=2))
        return
    for row in trained:
        click.echo(f"{row['name']} (trained model, in the package): {row['file']}, "
                   f"{row['size']:,} bytes" if row["size"] else f"{row['name']}: {row['file']} "
                   "(missing)")
        click.echo(f"    {row['description']}")
        click.echo(f"    checksum {row['checksum']}; licence: {row['licence']}")
        click.echo(f"    registered by {row['registered_by']}")
    for row in rows:
        size = f", {row['size']:,} bytes" if row["size"] else ""
        click.echo(f"{row['name']}: {row['file']}{size}, "
                   f"{'cached at ' + row['cached'] if row['cached'] else 'not cached'}")
        click.echo(f"    from {', '.join(row['urls'])}")
        checksum = row["checksum"] or "none published (recorded at the first download)"
        click.echo(f"    checksum {checksum}; licence: {row['licence']}")
        click.echo(f"    cite: {row['citation']}; registered by {row['registered_by']}")


@weights.command("download")
@click.argument("names", nargs=-1, required=True)
@user_errors
def weights_download(names: tuple[str, ...]) -> None:
    """Fetch weight files into the cache (verified; a broken download resumes)."""
    from esc50.commands.weights import download
    from esc50.core.plugin_api.registry import load_registry

    registry = load_registry()
    for name in names:
        click.echo(f"{name}: {download(registry, name, click.echo)}")


@weights.command("verify")
@click.argument("names", nargs=-1)
@user_errors
def weights_verify(names: tuple[str, ...]) -> None:
    """Check cached weight files against their checksums (all when none is named)."""
    from esc50.commands.weights import verify
    from esc50.core.plugin_api.registry import load_registry

    results = verify(load_registry(), list(names))
    for name, outcome in results:
        click.echo(f"{name}: {outcome}")
    if any(outcome.startswith("does not match") for _, outcome in results):
        raise SystemExit(1)


@weights.command("path")
@click.argument("name")
@user_errors
def weights_path(name: str) -> None:
    """Where a weight file is (or will be) cached."""
    from esc50.commands.weights import path_of
    from esc50.core.plugin_api.registry import load_registry

    click.echo(path_of(load_registry(), name))
