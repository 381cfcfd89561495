"""The built-in plugins (models, augmentations, featurizers, datasets, loggers), registered through
the same ``esc50`` entry-point group as third-party packages.

Calling the package, ``esc50.plugins(kind)``, still lists the installed plugins, as
``esc50.list_plugins(kind)`` does; it is deprecated (core/moved.py), so that ``esc50.plugins``
names the built-ins' package only."""

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, kind: str | None = None) -> list[dict[str, Any]]:
        from esc50.commands.api import list_plugins
        from esc50.core.moved import CALLABLE_PACKAGE, instead

        instead(CALLABLE_PACKAGE)
        return list_plugins(kind)


sys.modules[__name__].__class__ = _CallablePackage
