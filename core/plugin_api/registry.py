"""The plugin registry: loads plugins from entry points, collects their components, resolves ids.

Each entry point in the ``esc50`` group names a plugin module; the part of its name before the
first dot is the plugin's namespace, and a component registered by it gets the id
``<namespace>.<name>`` (built-ins: ``plugins.crnn``). A plugin that fails to import, raises in a
hook or registers nonsense is recorded in :attr:`Registry.problems` and the rest still load.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import sys
import traceback
import typing
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Callable

import pluggy

from torch import nn

from esc50.core.plugin_api import hookspecs
from esc50.core.plugin_api.adapters import (adapt_augmentation, config_for, legacy_options,
                                          porting_notes)
from esc50.core.plugin_api.checks import plugin_label
from esc50.core.convert import convert, type_name
from esc50.core.errors import Esc50Error
from esc50.core.moved import API_1_2, API_3, goes_away
from esc50.core.files.fetch import WeightFile, fetch
from esc50.core.plugin_api.trained import TrainedModel
from esc50.core.plugin_api.contracts import (Augmentation, DatasetReader, Featurizer, Logger)

ENTRY_POINT_GROUP = "esc50"
KINDS = {"model": "register_models", "augmentation": "register_augmentations",
         "featurizer": "register_featurizers", "dataset": "register_datasets",
         "logger": "register_loggers"}
CONTRACTS = {"model": nn.Module, "augmentation": Augmentation, "featurizer": Featurizer,
             "dataset": DatasetReader, "logger": Logger}


# The modules of plugin API 4 whose names moved (core/moved.py keeps them importable).
MOVED_MODULES = {f"esc50.core.{name}" for name in ("hookspecs", "contracts", "registry", "dataset",
                                                   "loggers")}

WEIGHTS_HOOK = "register_weights"  # the hooks that register data (weight files, trained
TRAINED_HOOK = "register_trained_models"  # models), not components

# Options that name a weight file: a registered name there is fetched (register_weights).
WEIGHT_OPTIONS = {"checkpoint"}

# Model options that only say where a fresh run's first weights come from (a published file,
# downloaded weights): a model rebuilt to receive trained weights ignores them.
ONE_TIME_OPTIONS = {"pretrained", "checkpoint"}

@dataclass
class Component:
    """One registered model, augmentation or featurizer."""

    kind: str
    id: str
    factory: Callable[..., Any]
    description: str
    package: str
    version: str
    api: int = hookspecs.PLUGIN_API_VERSION  # the plugin API its module was written for

    def options(self) -> dict[str, inspect.Parameter]:
        """Keyword options the factory takes (beyond the config and, for models, input shape)."""
        params = inspect.signature(self.factory).parameters
        skip = {"config", "input_shape", "self"}
        return {n: p for n, p in params.items()
                if n not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def option_types(self) -> dict[str, Any]:
        """The annotated type of each option (the default's type when unannotated)."""
        hints = typing.get_type_hints(self.factory.__init__ if inspect.isclass(self.factory)
                                      else self.factory)
        return {n: hints.get(n, type(p.default)) for n, p in self.options().items()}

    def option_docs(self) -> dict[str, str]:
        """A line per option: from the factory's docstrings (lines ``name: what it does``); the
        shared ``p`` and ``min_``/``max_`` range options are described by their names."""
        texts = [inspect.getdoc(self.factory) or ""]
        if inspect.isclass(self.factory):
            texts.append(inspect.getdoc(self.factory.__init__) or "")
        options, docs = self.options(), {}
        for line in "\n".join(texts).splitlines():
            match = re.match(r"\s*`{0,2}(\w+)`{0,2}: (.+)", line)
            if match and match[1] in options:
                docs.setdefault(match[1], match[2].strip())
        for name in options:
            if name == "p":
                docs.setdefault(name, "probability that an example is transformed")
            elif name.startswith(("min_", "max_")):
                end = "lower" if name.startswith("min_") else "upper"
                docs.setdefault(name, f"{end} end of the range {name[4:]} is drawn from, per "
                                      "example")
        return docs

    def option_table(self) -> list[dict[str, Any]]:
        """Each option's name, type, default (None when it has none) and doc, JSON-ready."""
        rows, docs = [], self.option_docs()
        for (name, param), kind in zip(self.options().items(), self.option_types().values()):
            default = None if param.default is inspect.Parameter.empty else param.default
            rows.append({"name": name, "type": type_name(kind),
                         "default": list(default) if isinstance(default, tuple) else default,
                         "doc": docs.get(name, "")})
        return rows


@dataclass(frozen=True)
class Choice:
    """One plugin a run uses: its kind, the spec as given, the component it resolves to and its
    options, converted."""

    kind: str
    spec: str
    component: Component
    options: dict[str, Any]
    legacy: dict[str, Any] = field(default_factory=dict)  # old config keys (adapters.py)
    weights: dict[str, WeightFile] = field(default_factory=dict)  # names a checkpoint may give

    @property
    def info(self) -> dict[str, str]:
        """What a run records of it: kind, id, package and version."""
        c = self.component
        return {"kind": self.kind, "id": c.id, "package": c.package, "version": c.version}

    @property
    def label(self) -> str:
        """How messages name it: ``model plugins.crnn (esc50 0.3.0)``."""
        return plugin_label(self.info)

    def build(self, config: Any, *args: Any, restoring: bool = False) -> Any:
        """Call the factory with ``config``, ``args`` (a model's input shape) and the options.
        ``restoring=True`` builds a model to receive a checkpoint's weights: its one-time set-up
        options (``pretrained``, ``checkpoint``: where its first weights come from) then keep
        their defaults."""
        kwargs = dict(self.options)
        if restoring and self.kind == "model":
            for name in ONE_TIME_OPTIONS & self.component.options().keys():
                kwargs.pop(name, None)
        for name in WEIGHT_OPTIONS & kwargs.keys():
            value = kwargs[name]
            if isinstance(value, str) and value in self.weights:
                kwargs[name] = str(fetch(self.weights[value]))  # a name: fetched
            elif isinstance(value, str) and looks_like_a_name(value) and not Path(value).exists():
                close = difflib.get_close_matches(value, list(self.weights), n=3)
                hint = f"did you mean {', '.join(close)}? " if close else ""
                raise Esc50Error(f"{self.kind} {self.component.id}: {name}={value!r} is neither "
                                 f"a weights name nor a file ({hint}names: "
                                 f"{', '.join(sorted(self.weights)) or 'none'}; "
                                 "esc50 weights list shows them)")
        component = self.component
        try:
            built = component.factory(config_for(config, component.api, self.legacy), *args,
                                      **kwargs)
        except (Esc50Error, ValueError) as exc:  # a factory rejecting its config or options
            raise Esc50Error(f"{self.kind} {component.id}: {exc}") from exc
        except Exception as exc:  # a bug in a plugin: name it instead of a bare traceback
            raise Esc50Error(f"{self.kind} {component.id} ({component.package}) failed to build: "
                             f"{_one_line(exc)}") from exc
        expected = CONTRACTS[self.kind]
        if not isinstance(built, expected):
            raise Esc50Error(f"{self.kind} {component.id} ({component.package}) returned "
                             f"{type(built).__name__}, not a {expected.__name__}")
        return adapt_augmentation(built, component.api) if self.kind == "augmentation" \
            else built


def looks_like_a_name(value: str) -> bool:
    """A weights option value that can only be meant as a name: no folder, no extension
    (a path has one of them; a hub id such as ``MIT/ast-...`` has a slash)."""
    return bool(value) and "/" not in value and "\\" not in value and "." not in value


@dataclass(frozen=True)
class RunPlugins:
    """Every plugin a run uses, each spec parsed, resolved and its options converted once."""

    dataset: Choice
    model: Choice
    featurizer: Choice
    augs: list[Choice]
    loggers: list[Choice]

    @classmethod
    def of(cls, config: Any, registry: Registry) -> RunPlugins:
        """The plugins ``config`` names; an unknown id or a bad option fails here, before
        anything is read."""
        for key in config.options:  # an unknown table fails here, before anything is read
            registry.table_owner(key)
        return cls(registry.choose("dataset", config.dataset, config),
                   registry.choose("model", config.model, config),
                   registry.choose("featurizer", config.featurizer, config),
                   [registry.choose("augmentation", spec, config) for spec in config.augs],
                   [registry.choose("logger", spec, config) for spec in config.loggers])

    def recorded(self) -> dict[str, dict[str, str]]:
        """What a run records of the plugins it needs, by spec (kind, id, package, version).
        Loggers are left out: they never change a result, so a run loads without them."""
        return {choice.spec: choice.info
                for choice in [self.dataset, self.model, self.featurizer, *self.augs]}


@dataclass
class PluginSource:
    """Where a plugin namespace comes from."""

    namespace: str
    package: str
    version: str
    module: str


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
            close = difflib.get_close_matches(key, list(self.components), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise Esc50Error(f"config has options for {key!r}, which no plugin provides{hint}")
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
        self._add_plugin(plugin, namespace, package, version, getattr(plugin, "__name__", ""),
                         [], undeclared_warning=False)

    def _add_plugin(self, plugin: object, namespace: str, package: str, version: str,
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
            self.problems.append(f"{where} declares ESC50_PLUGIN_API = {declared!r}, which is "
                                 f"not a plugin API version (1 to {current})")
            return
        if declared is not None and declared > current:
            self.problems.append(f"{where} is built for plugin API {declared}, newer than this "
                                 f"esc50's ({current}): upgrade esc50")
            return
        api = current if declared is None else declared
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        try:
            manager.register(plugin)
        except Exception as exc:  # pluggy validates hook signatures here
            self.problems.append(f"plugin {namespace} ({package}): {_one_line(exc)}")
            return
        self.sources.append(PluginSource(namespace, package, version, module))
        before = set(self.components)
        for kind, hook_name in KINDS.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                register = self._register_callback(kind, namespace, package, version, api)
                try:
                    impl.function(register=register)
                except Exception as exc:
                    self.problems.append(
                        f"plugin {namespace} ({package}) failed in {hook_name}: {_one_line(exc)}")
        for hook_name, callback in ((WEIGHTS_HOOK, self._weights_callback),
                                    (TRAINED_HOOK, self._trained_callback)):
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                try:
                    impl.function(register=callback(namespace, package))
                except Exception as exc:
                    self.problems.append(f"plugin {namespace} ({package}) failed in {hook_name}: "
                                         f"{_one_line(exc)}")
        registered = [c for i, c in self.components.items() if i not in before]
        changes = porting_notes(api, registered, root) + notes
        if declared is None and undeclared_warning:
            changes.append(f"declare the plugin API it is written for: ESC50_PLUGIN_API = "
                           f"{current} in {module or namespace}")
        if changes:
            written = f"is written for plugin API {api}" if declared is not None else \
                "declares no plugin API version"
            adapted = f"; esc50 (API {current}) adapts it" if api < current else ""
            if api < current:
                adapted += f" (that adapter is {goes_away(API_1_2 if api <= 2 else API_3)})"
            self.warnings.append(f"{where} {written}{adapted}. To port it: {'; '.join(changes)} "
                                 "(docs/plugins.md, Compatibility)")

    def _weights_callback(self, namespace: str, package: str) -> Callable[..., None]:
        def register(name: str, file: str, urls: list[str] | tuple[str, ...],
                     size: int | None = None, checksum: str | None = None, licence: str = "",
                     citation: str = "") -> None:
            weights = WeightFile(name, file, tuple(urls), size, checksum, licence, citation,
                                 f"{namespace} ({package})")
            if name in self.weights:
                self.problems.append(f"weights {name!r} are registered by both "
                                     f"{self.weights[name].source} and {weights.source}; keeping "
                                     "the first")
                return
            self.weights[name] = weights
        return register

    def _trained_callback(self, namespace: str, package: str) -> Callable[..., None]:
        def register(name: str, path: str | Path, checksum: str, description: str = "",
                     licence: str = "") -> None:
            model = TrainedModel(name, Path(path), checksum, description, licence,
                                 f"{namespace} ({package})")
            if name in self.trained:
                self.problems.append(f"trained model {name!r} is registered by both "
                                     f"{self.trained[name].source} and {model.source}; keeping "
                                     "the first")
                return
            self.trained[name] = model
        return register

    def _register_callback(self, kind: str, namespace: str, package: str, version: str,
                           api: int) -> Callable[..., None]:
        def register(factory: Callable[..., Any], name: str | None = None,
                     description: str | None = None) -> None:
            if not callable(factory):
                raise Esc50Error(f"registered {kind} {factory!r} is not callable")
            name = name or getattr(factory, "name", None) or factory.__name__.lower()
            if not isinstance(name, str) or not name.replace("_", "").isalnum():
                raise Esc50Error(f"registered {kind} name {name!r} is not a plain identifier")
            component_id = f"{namespace}.{name}"
            if component_id in self.components:
                other = self.components[component_id]
                self.problems.append(f"{kind} id {component_id} is claimed by both {other.package} "
                                     f"and {package}; keeping {other.package}'s")
                return
            doc = description or (inspect.getdoc(factory) or "").strip().split("\n")[0]
            self.components[component_id] = Component(kind, component_id, factory, doc, package,
                                                      version, api)
        return register


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
                f"plugin {ep.name} ({package}) failed to import {ep.value}: {_one_line(exc)}")
            continue
        root, files = package_files(module) if package != "esc50" else (None, [])
        old = old_imports(files, root)
        notes = [f"import from esc50 itself, not {', '.join(old)}"] if old else []
        registry._add_plugin(module, namespace, package, version, ep.value, notes, root=root)
    return registry


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


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``id:key=value,key=value`` into the id and its (string) options."""
    plugin_id, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Esc50Error(f"bad option {item!r} in {spec!r}: expected key=value")
        options[key.strip()] = value.strip()
    if not plugin_id.strip():
        raise Esc50Error(f"bad plugin spec {spec!r}: expected id[:key=value,...]")
    return plugin_id.strip(), options


def convert_options(component: Component, options: dict[str, Any]) -> dict[str, Any]:
    """Check option names against the factory's signature and convert them to its types."""
    types = component.option_types()
    converted = {}
    for key, value in options.items():
        if key not in types:
            names = ", ".join(types) or "none"
            raise Esc50Error(f"{component.kind} {component.id} has no option {key!r} "
                             f"(options: {names})")
        converted[key] = _convert_option(component, key, value, types[key])
    return converted


def _convert_option(component: Component, key: str, value: Any, kind: Any) -> Any:
    try:
        return convert(value, kind)
    except ValueError as exc:
        raise Esc50Error(f"{component.kind} {component.id}: option {key}={value!r} is not a valid "
                         f"{exc}") from None


def _one_line(exc: BaseException) -> str:
    """The exception on one line, with the file and line where it was raised (the plugin's
    own code, for a bug at import or in a hook)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}{where}"


def check_options_in_run(config: Any, keys: list[str]) -> None:
    """Options set for a plugin the run does not use (``--set plugins.crnn.hidden_size=7`` with
    ``--model plugins.kumar``) are an error, not ignored. ``keys``: ``<plugin id>.<option>``."""
    specs = [config.dataset, config.model, config.featurizer, *config.augs, *config.loggers]
    used = {spec.partition(":")[0] for spec in specs}
    used_names = {plugin_id.rpartition(".")[2] for plugin_id in used}
    for key in keys:
        plugin_id = key.rpartition(".")[0]
        if plugin_id not in used and plugin_id.rpartition(".")[2] not in used_names:
            raise Esc50Error(f"option {key} is for {plugin_id}, which this run does not use "
                             f"(its plugins: {', '.join(sorted(used))})")
