"""`esc50 download`: the ESC-50 release, fetched and checked."""

from __future__ import annotations

from pathlib import Path

import click

from esc50.cli.errors import user_errors


@click.command()
@click.option("--dest", type=click.Path(file_okay=False), help="folder to unpack into "
              "(default: the esc50 cache folder).")
@click.option("--url", help="archive to fetch (default: the official ESC-50 release).")
@click.option("--sha256", help="expected sha256 of the archive.")
@user_errors
def download(dest: str | None, url: str | None, sha256: str | None) -> None:
    """Download and verify the ESC-50 dataset."""
    from esc50.core.data.location import ENV_VAR
    from esc50.core.files.cache import cache_dir
    from esc50.core.data.download import OFFICIAL_URL, download_dataset

    root = download_dataset(url or OFFICIAL_URL, Path(dest) if dest else cache_dir(), sha256)
    click.echo(f"ESC-50 is ready in {root}; pass --data {root} or set {ENV_VAR}={root}")
