"""The plugin registry: loads plugins from entry points, collects their components, resolves ids.

Each entry point in the ``esc50`` group names a plugin module; the part of its name before the
first dot is the plugin's namespace, and a component registered by it gets the id
``<namespace>.<name>`` (built-ins: ``plugins.crnn``). A plugin that fails to import, raises in a
hook or registers nonsense is recorded in :attr:`Registry.problems` and the rest still load
(:mod:`registration`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

from esc50.core.errors import Esc50Error, did_you_mean
from esc50.core.files.fetch import WeightFile
from esc50.core.plugin_api.adapters import legacy_options
from esc50.core.plugin_api.choices import Choice
from esc50.core.plugin_api.components import Component, convert_options, one_line, parse_spec
from esc50.core.plugin_api.hookspecs import ENTRY_POINT_GROUP, KINDS
from esc50.core.plugin_api.registration import (PluginSource, add_plugin, old_imports,
                                                package_files)
from esc50.core.plugin_api.trained import TrainedModel


@dataclass
class Registry:
    """All components by id, the sources of their plugins, and the problems met while loading."""

    components: dict[str, Component] = field(default_factory=dict)
    sources: list[PluginSource] = field(default_factory=list)
    weights: dict[str, WeightFile] = field(default_factory=dict)  # published files by name
    trained: dict[str, TrainedModel] = field(default_factory=dict)  # shipped models by name
    problems: list[str] = field(default_factory=list)  # plugins refused, each on one line
    warnings: list[str] = field(default_factory=list)  # plugins loaded with a warning (adapted)

    def check_recorded(self, plugins: dict[str, dict[str, str]],
                       warn: Callable[[str], None], kinds: tuple[str, ...] = tuple(KINDS)
                       ) -> None:
        """The plugins of ``kinds`` a run recorded (spec -> kind, id, package, version) must be
        installed: a missing one is an error naming the package and version to install;
        another installed version is a warning."""
        for info in plugins.values():
            if info["kind"] not in kinds:
                continue
            try:
                installed = self.resolve(info["kind"], info["id"])
            except Esc50Error:
                raise Esc50Error(
                    f"this run needs {info['kind']} {info['id']} from {info['package']} "
                    f"{info['version']}, which is not installed here: pip install "
                    f"'{info['package']}=={info['version']}'") from None
            if installed.package == info["package"] and installed.version != info["version"]:
                warn(f"warning: {info['kind']} {info['id']} is {installed.package} "
                     f"{installed.version} here; the run was trained with {info['version']}")

    def table_owner(self, key: str) -> Component:
        """The plugin an options table is for: its key is the plugin's id (``plugins.noise``) or
        its name without the namespace (``noise``), which must name one plugin. One rule for
        every table, wherever it comes from (a config file, ``--set``, a recipe)."""
        matches = [c for c in self.components.values() if key in (c.id, c.id.split(".", 1)[1])]
        exact = [c for c in matches if c.id == key]
        if exact:
            return exact[0]
        if len(matches) > 1:
            raise Esc50Error(f"config has options for {key!r}, which could be "
                             f"{', '.join(sorted(c.id for c in matches))}: use the full id")
        if not matches:
            hint = did_you_mean(key, self.components)
            raise Esc50Error(f"config has options for {key!r}, which no plugin provides"
                             + (f"; {hint}" if hint else ""))
        return matches[0]

    def options_of(self, component: Component, options: dict[str, dict[str, Any]]
                   ) -> dict[str, Any]:
        """The options the config's tables give ``component`` (tables by id or short name:
        :meth:`table_owner`; the same option given two ways differently is refused)."""
        merged: dict[str, Any] = {}
        for key, table in options.items():
            if self.table_owner(key) is not component:
                continue
            for name, value in table.items():
                if name in merged and merged[name] != value:
                    raise Esc50Error(f"config gives {component.id} option {name} twice, as "
                                     f"{merged[name]!r} and {value!r} (tables [{component.id}] "
                                     "and its short name): keep one")
                merged[name] = value
        return merged

    def of_kind(self, kind: str) -> list[Component]:
        return sorted((c for c in self.components.values() if c.kind == kind), key=lambda c: c.id)

    def resolve(self, kind: str, plugin_id: str) -> Component:
        """Find a component by full id (``plugins.crnn``) or by an unambiguous bare name."""
        candidates = {c.id: c for c in self.of_kind(kind)}
        if plugin_id in candidates:
            return candidates[plugin_id]
        same_name = [c for c in candidates.values() if c.id.split(".", 1)[1] == plugin_id]
        if len(same_name) == 1:
            return same_name[0]
        if same_name:
            ids = ", ".join(c.id for c in same_name)
            raise Esc50Error(f"{kind} {plugin_id!r} is ambiguous: it could be {ids}")
        broken = [p for p in self.problems if plugin_id.split(".")[0] in p]
        close = difflib.get_close_matches(plugin_id, list(candidates), n=3, cutoff=0.5)
        close += [i for i in candidates if plugin_id in i and i not in close]
        hint = f"; did you mean {', '.join(close[:3])}?" if close else \
            f"; available: {', '.join(candidates) or 'none'}"
        if broken:
            hint += f" (a plugin failed to load: {broken[0]})"
        raise Esc50Error(f"unknown {kind} {plugin_id!r}{hint}")

    def choose(self, kind: str, spec: str, config: Any) -> Choice:
        """The component a spec ``id[:key=value,...]`` names, with its options: the config's
        table for it, then the spec's own (which win), checked against the factory's signature
        and converted to its types. Every spec of a run is parsed here, once."""
        plugin_id, spec_options = parse_spec(spec)
        component = self.resolve(kind, plugin_id)
        options = {**self.options_of(component, config.options), **spec_options}
        options, legacy = legacy_options(component.api, options)
        return Choice(kind, spec, component, convert_options(component, options), legacy,
                      self.weights)

    def create(self, kind: str, spec: str, config: Any, *args: Any,
               restoring: bool = False) -> Any:
        """Build the component a spec names (see :meth:`choose` and :meth:`Choice.build`)."""
        return self.choose(kind, spec, config).build(config, *args, restoring=restoring)

    def typed_options(self, config: Any) -> Any:
        """``config`` with every plugin table under its plugin's id (a table keyed by a short
        name, ``[noise]``, moved there) and its values converted to the types the plugin's
        factory declares (``--set plugins.crnn.hidden_size=128`` gives 128, as a config file
        does), so a run's config.toml is the same whichever way a value came in. A table for
        an unknown or ambiguous plugin is refused (:meth:`table_owner`)."""
        typed = {}
        for key in config.options:
            component = self.table_owner(key)
            if component.id not in typed:
                options, legacy = legacy_options(component.api,
                                                 self.options_of(component, config.options))
                typed[component.id] = {**convert_options(component, options), **legacy}
        return config.with_options(typed)

    def register_plugin(self, plugin: object, namespace: str,
                        package: str = "registered at run time", version: str = "") -> None:
        """Register a plugin object (module or instance with hook implementations) at run time
        (one that declares no ``ESC50_PLUGIN_API`` is taken to be current, without a warning)."""
        add_plugin(self, plugin, namespace, package, version, getattr(plugin, "__name__", ""),
                   [], undeclared_warning=False)


def load_registry() -> Registry:
    """Load every plugin of the ``esc50`` entry-point group, isolating broken ones. The
    toolkit's own plugins load first, so an id a third party also claims stays the built-in's."""
    registry = Registry()

    def builtin_first(ep: EntryPoint) -> tuple[bool, str]:
        return (ep.dist is None or ep.dist.name != "esc50", ep.name)

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=builtin_first):
        namespace = ep.name.split(".", 1)[0]
        package = ep.dist.name if ep.dist else "(unknown package)"
        version = ep.dist.version if ep.dist else ""
        try:
            module = ep.load()
        except Exception as exc:
            registry.problems.append(
                f"plugin {ep.name} ({package}) failed to import {ep.value}: {one_line(exc)}")
            continue
        root, files = package_files(module) if package != "esc50" else (None, [])
        old = old_imports(files, root)
        notes = [f"import from esc50 itself, not {', '.join(old)}"] if old else []
        add_plugin(registry, module, namespace, package, version, ep.value, notes, root=root)
    return registry
