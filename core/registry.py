"""Deprecated path: this module's names live in :mod:`esc50.core.plugin_api.registry` now; plugins
import them from ``esc50`` (see docs/plugins.md, "Reference for authors")."""

from esc50.core.moved import moved
from esc50.core.plugin_api.registry import *  # noqa: F401,F403

moved(__name__, "esc50.core.plugin_api.registry")
