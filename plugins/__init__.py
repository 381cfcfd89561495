"""The built-in plugins (models, augmentations, featurizers, datasets), registered through the
same ``esc50`` entry-point group as third-party packages.

The package is also the Python API's listing function: ``esc50.plugins(kind=None)`` returns
every installed plugin (see :func:`esc50.core.commands.api.list_plugins`), so a notebook reads
``esc50.plugins("model")`` while ``esc50.plugins.models`` stays this package's sub-package."""

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, kind: str | None = None) -> list[dict[str, Any]]:
        from esc50.core.commands.api import list_plugins

        return list_plugins(kind)


sys.modules[__name__].__class__ = _CallablePackage
