"""Where the dataset lives: ``--data PATH``, else ``$ESC50_DATA``, else the default cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from esc50.core.errors import Esc50Error
from esc50.core.files.cache import cache_dir

ENV_VAR = "ESC50_DATA"


def default_data_dir() -> Path:
    """Where ``esc50 download`` puts the official release by default."""
    return cache_dir() / "ESC-50-master"


def resolve_data_dir(data: str | None) -> Path:
    """The dataset folder to use; a clear error saying how to get it when it is missing."""
    if data:
        path, origin = Path(data).expanduser(), "--data"
    elif os.environ.get(ENV_VAR):
        path, origin = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        path, origin = default_data_dir(), "the default location"
    if not path.is_dir():
        raise Esc50Error(f"no dataset at {path} (from {origin}): run `esc50 download` to fetch "
                         f"ESC-50 there, or pass --data PATH / set {ENV_VAR} to a folder of clips")
    return path
