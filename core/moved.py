"""Old import paths of the plugin API kept working: each module at an old path re-exports the
names from where they live now and warns once, naming the new place (``esc50`` itself)."""

from __future__ import annotations

import warnings


def moved(old: str, new: str) -> None:
    """Warn (a DeprecationWarning, attributed to the module importing ``old``) that ``old`` is
    now ``new`` and that plugins import its names from ``esc50``."""
    warnings.warn(f"{old} is deprecated since esc50 0.3: import its names from "
                  f"esc50 itself (e.g. `from esc50 import hookimpl, Augmentation`); they live in "
                  f"{new} now", DeprecationWarning, stacklevel=3)
