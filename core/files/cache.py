"""esc50's cache folder: ``$ESC50_CACHE``, else ``$XDG_CACHE_HOME/esc50``, else
``~/.cache/esc50``. It holds the downloaded dataset, weight files fetched by name, the plugin
listing and, when asked for, the decoded-audio cache."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_VARIABLE = "ESC50_CACHE"


def cache_dir() -> Path:
    """The toolkit's cache folder (see the module docstring)."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "esc50"
