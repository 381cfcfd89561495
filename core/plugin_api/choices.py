"""The plugins one run uses: each spec of its config resolved to a component with its options
converted, once (:class:`RunPlugins`), and built as its contract says (:meth:`Choice.build`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from esc50.core.errors import Esc50Error, did_you_mean
from esc50.core.files.fetch import WeightFile, fetch
from esc50.core.plugin_api.adapters import adapt_augmentation, config_for
from esc50.core.plugin_api.checks import plugin_label
from esc50.core.plugin_api.components import Component, one_line
from esc50.core.plugin_api.contracts import Augmentation, DatasetReader, Featurizer, Logger

if TYPE_CHECKING:
    from esc50.core.plugin_api.registry import Registry

CONTRACTS = {"model": nn.Module, "augmentation": Augmentation, "featurizer": Featurizer,
             "dataset": DatasetReader, "logger": Logger}
# Options that name a weight file: a registered name there is fetched (register_weights).
WEIGHT_OPTIONS = {"checkpoint"}
# Model options that only say where a fresh run's first weights come from (a published file,
# downloaded weights): a model rebuilt to receive trained weights ignores them.
ONE_TIME_OPTIONS = {"pretrained", "checkpoint"}


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
        """Call the factory with ``config`` (where its signature asks for it: a parameter named
        ``config``), ``args`` (a model's input shape) and the options.
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
                hint = did_you_mean(value, self.weights)
                hint += " " if hint else ""
                raise Esc50Error(f"{self.kind} {self.component.id}: {name}={value!r} is neither "
                                 f"a weights name nor a file ({hint}names: "
                                 f"{', '.join(sorted(self.weights)) or 'none'}; "
                                 "esc50 weights list shows them)")
        component = self.component
        given = (config_for(config, component.api, self.legacy), *args) \
            if component.reads_config() else args
        try:
            built = component.factory(*given, **kwargs)
        except (Esc50Error, ValueError) as exc:  # a factory rejecting its config or options
            raise Esc50Error(f"{self.kind} {component.id}: {exc}") from exc
        except Exception as exc:  # a bug in a plugin: name it instead of a bare traceback
            raise Esc50Error(f"{self.kind} {component.id} ({component.package}) failed to build: "
                             f"{one_line(exc)}") from exc
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
