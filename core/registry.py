"""Deprecated path: this module's names live in :mod:`esc50.core.plugin_api.registry` (and its
neighbours ``choices`` and ``components``) now; plugins
import them from ``esc50`` (see docs/plugins.md, "Reference for authors")."""

from esc50.core.moved import moved
from esc50.core.plugin_api.choices import *  # noqa: F401,F403
from esc50.core.plugin_api.components import *  # noqa: F401,F403
from esc50.core.plugin_api.hookspecs import ENTRY_POINT_GROUP, KINDS  # noqa: F401
from esc50.core.plugin_api.registry import *  # noqa: F401,F403

moved(__name__, "esc50.core.plugin_api.registry")
