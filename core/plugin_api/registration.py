"""Registering a plugin module into a registry: its declared plugin API checked, each hook it
implements called with its ``register`` callback (components, weight files, trained models), a
failing hook or a bad registration recorded as a problem of that plugin alone, and the one
porting warning an older plugin package gets (what to change, file by file)."""

from __future__ import annotations

import ast
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from esc50.core.errors import Esc50Error
from esc50.core.files.fetch import WeightFile
from esc50.core.moved import API_1_2, API_3, goes_away
from esc50.core.plugin_api import hookspecs
from esc50.core.plugin_api.adapters import porting_notes
from esc50.core.plugin_api.components import Component, one_line
from esc50.core.plugin_api.trained import TrainedModel

if TYPE_CHECKING:
    from esc50.core.plugin_api.registry import Registry

# The modules of plugin API 4 whose names moved (core/moved.py keeps them importable).
MOVED_MODULES = {f"esc50.core.{name}" for name in ("hookspecs", "contracts", "registry", "dataset",
                                                   "loggers")}


@dataclass
class PluginSource:
    """Where a plugin namespace comes from."""

    namespace: str
    package: str
    version: str
    module: str


def add_plugin(registry: Registry, plugin: object, namespace: str, package: str, version: str,
                module: str, notes: list[str], undeclared_warning: bool = True,
                root: Path | None = None) -> None:
    """Register ``plugin``'s components. ``notes``: what else its package must change (old
    import paths); they go into the one warning a package gets, with the porting notes of
    its components (files named relative to ``root``)."""
    current = hookspecs.PLUGIN_API_VERSION
    declared = getattr(plugin, "ESC50_PLUGIN_API", None)
    where = f"plugin {namespace} ({package} {version})".replace(" )", ")")
    if declared is not None and (not isinstance(declared, int) or isinstance(declared, bool)
                                 or declared < 1):
        registry.problems.append(f"{where} declares ESC50_PLUGIN_API = {declared!r}, which "
                                 f"is not a plugin API version (1 to {current})")
        return
    if declared is not None and declared > current:
        registry.problems.append(f"{where} is built for plugin API {declared}, newer than "
                                 f"this esc50's ({current}): upgrade esc50")
        return
    api = current if declared is None else declared
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    try:
        manager.register(plugin)
    except Exception as exc:  # pluggy validates hook signatures here
        registry.problems.append(f"plugin {namespace} ({package}): {one_line(exc)}")
        return
    registry.sources.append(PluginSource(namespace, package, version, module))
    before = set(registry.components)
    for kind, hook_name in hookspecs.KINDS.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            register = component_callback(registry, kind, namespace, package, version, api)
            try:
                impl.function(register=register)
            except Exception as exc:
                registry.problems.append(
                    f"plugin {namespace} ({package}) failed in {hook_name}: {one_line(exc)}")
    for hook_name, callback in ((hookspecs.WEIGHTS_HOOK, weights_callback),
                                (hookspecs.TRAINED_HOOK, trained_callback)):
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            try:
                impl.function(register=callback(registry, namespace, package))
            except Exception as exc:
                registry.problems.append(f"plugin {namespace} ({package}) failed in {hook_name}: "
                                     f"{one_line(exc)}")
    registered = [c for i, c in registry.components.items() if i not in before]
    # a plugin written for this API has nothing to port (reading its source costs time)
    changes = (porting_notes(api, registered, root) if api < current else []) + notes
    if declared is None and undeclared_warning:
        changes.append(f"declare the plugin API it is written for: ESC50_PLUGIN_API = "
                       f"{current} in {module or namespace}")
    if changes:
        written = f"is written for plugin API {api}" if declared is not None else \
            "declares no plugin API version"
        adapted = f"; esc50 (API {current}) adapts it" if api < current else ""
        if api < current:
            adapted += f" (that adapter is {goes_away(API_1_2 if api <= 2 else API_3)})"
        registry.warnings.append(f"{where} {written}{adapted}. To port it: "
                                 f"{'; '.join(changes)} (docs/plugins.md, Compatibility)")


def weights_callback(registry: Registry, namespace: str, package: str) -> Callable[..., None]:
    def register(name: str, file: str, urls: list[str] | tuple[str, ...],
                 size: int | None = None, checksum: str | None = None, licence: str = "",
                 citation: str = "") -> None:
        keep_first(registry, registry.weights, "weights", WeightFile(
            name, file, tuple(urls), size, checksum, licence, citation, f"{namespace} ({package})"))
    return register


def trained_callback(registry: Registry, namespace: str, package: str) -> Callable[..., None]:
    def register(name: str, path: str | Path, checksum: str, description: str = "",
                 licence: str = "") -> None:
        keep_first(registry, registry.trained, "trained model", TrainedModel(
            name, Path(path), checksum, description, licence, f"{namespace} ({package})"))
    return register


def keep_first(registry: Registry, store: dict[str, Any], what: str, item: Any) -> None:
    """Add ``item`` (a weight file or a trained model, by its ``name``) to ``store``; a name
    another plugin registered first is a problem of the second, and the first is kept."""
    if item.name in store:
        registry.problems.append(f"{what} {item.name!r} is registered by both "
                                 f"{store[item.name].source} and {item.source}; keeping the "
                                 "first")
        return
    store[item.name] = item


def component_callback(registry: Registry, kind: str, namespace: str, package: str, version: str,
                       api: int) -> Callable[..., None]:
    def register(factory: Callable[..., Any], name: str | None = None,
                 description: str | None = None) -> None:
        if not callable(factory):
            raise Esc50Error(f"registered {kind} {factory!r} is not callable")
        name = name or getattr(factory, "name", None) or factory.__name__.lower()
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise Esc50Error(f"registered {kind} name {name!r} is not a plain identifier")
        component_id = f"{namespace}.{name}"
        if component_id in registry.components:
            other = registry.components[component_id]
            registry.problems.append(f"{kind} id {component_id} is claimed by both "
                                     f"{other.package} and {package}; keeping "
                                     f"{other.package}'s")
            return
        doc = description or (inspect.getdoc(factory) or "").strip().split("\n")[0]
        registry.components[component_id] = Component(kind, component_id, factory, doc, package,
                                                  version, api)
    return register



def package_files(module: Any) -> tuple[Path | None, list[Path]]:
    """The folder holding a plugin module's top-level package, and the package's Python files
    (the module's own file for a plain module)."""
    top = sys.modules.get(module.__name__.split(".")[0], module)
    folders = [Path(p) for p in getattr(top, "__path__", [])]
    if folders:
        return folders[0].parent, sorted(f for d in folders for f in d.rglob("*.py"))
    file = getattr(module, "__file__", None)
    return (Path(file).parent, [Path(file)]) if file else (None, [])


def old_imports(files: list[Path], root: Path | None) -> list[str]:
    """Where a plugin package imports from the moved module paths of plugin API 4
    (``esc50.core.contracts``, ...): ``file:line (module)``, files relative to ``root``."""
    found = []
    for path in files:
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        shown = path.relative_to(root) if root and path.is_relative_to(root) else path
        for node in ast.walk(tree):
            names = [node.module] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found += [f"{name} ({shown}:{node.lineno})" for name in names
                      if name in MOVED_MODULES]
    return found


