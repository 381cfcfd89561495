"""What is deprecated, in one place: each old path or name kept working, since when, and the
release it goes away in (the policy: at least two minor releases after the one that replaced
it; docs/plugins.md, Compatibility). The warnings are made here, so each says the same."""

from __future__ import annotations

import warnings

# what is kept working -> (deprecated since, goes away in, what to use instead)
DEPRECATED = {
    "the module paths of plugin API 4 (esc50.core.hookspecs, esc50.core.contracts, "
    "esc50.core.registry, esc50.core.dataset, esc50.core.loggers)":
        ("0.3", "0.5", "import the names from esc50 itself"),
    "Randomness.draws and Randomness.bulk": ("0.3", "0.5", "Randomness.examples and "
                                                           "Randomness.signals"),
    "plugins written for plugin API 1 or 2 (adapted: forward-style augmentations, stage "
    "'spec', model and STFT settings read from the config)":
        ("0.3", "0.5", "port them as the load warning says"),
    "plugins written for plugin API 3 (per-example draws on the training device)":
        ("0.3", "0.6", "move each draw with to_device(draw, x)"),
    "calling esc50.plugins(kind), the built-in plugins' package, to list plugins":
        ("0.3", "0.5", "esc50.list_plugins(kind)"),
}
MODULE_PATHS, RANDOMNESS_NAMES, API_1_2, API_3, CALLABLE_PACKAGE = DEPRECATED


def goes_away(what: str) -> str:
    """'deprecated since esc50 S and goes away in esc50 R' for an entry of DEPRECATED."""
    since, removed, _ = DEPRECATED[what]
    return f"deprecated since esc50 {since} and goes away in esc50 {removed}"


def moved(old: str, new: str) -> None:
    """Warn (a DeprecationWarning, attributed to the module importing ``old``) that ``old`` is
    now ``new`` and that plugins import its names from ``esc50``."""
    warnings.warn(f"{old} is {goes_away(MODULE_PATHS)}: import its names from esc50 itself "
                  f"(e.g. `from esc50 import hookimpl, Augmentation`); they live in {new} now",
                  DeprecationWarning, stacklevel=3)


def renamed(old: str, new: str) -> None:
    """Warn that the attribute ``old`` of the plugin API is ``new`` now."""
    warnings.warn(f"{old} is {goes_away(RANDOMNESS_NAMES)}: use {new} (same generator)",
                  DeprecationWarning, stacklevel=3)


def instead(what: str) -> None:
    """Warn that ``what`` (an entry of DEPRECATED) is deprecated, and what to use instead."""
    warnings.warn(f"{what} is {goes_away(what)}: use {DEPRECATED[what][2]}",
                  DeprecationWarning, stacklevel=3)
