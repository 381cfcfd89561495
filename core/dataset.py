"""Deprecated path: the names of this module live in :mod:`esc50.core.data.clips`,
:mod:`esc50.core.plugin_api.contracts` and :mod:`esc50.core.files.read` now; plugins import them
from ``esc50`` (see docs/plugins.md, "Reference for authors")."""

from esc50.core.moved import moved
from esc50.core.data.clips import *  # noqa: F401,F403
from esc50.core.files.read import read_table  # noqa: F401
from esc50.core.plugin_api.contracts import Clip, ClipTable, DatasetReader  # noqa: F401

moved(__name__, "esc50.core.data.clips")
