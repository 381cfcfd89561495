"""Plugins written for an earlier plugin API, adapted instead of refused.

Every change to the plugin contract since API 1 has an adapter here, so a package built for any
earlier version loads and trains; the registry prints one warning per such package naming what to
change (:func:`porting_notes`). The changes, by the version that made them:

- 2: augmentations follow the draw-then-apply template (``sample`` and ``apply`` instead of
  ``forward``), the stage ``"spec"`` is ``"features"``, batch-stage augmentations subclass
  ``BatchAugmentation``; the report's model knobs are plugin options, no longer config keys.
  Adapter: :class:`ForwardAugmentation` runs an old ``forward(x, generator)`` augmentation under
  the template; old config keys read by a factory are answered by :class:`LegacyConfig`.
- 3: the STFT and mel knobs (``n_fft``, ``win_length``, ``hop_length``, ``n_mels``) are
  featurizer options, no longer config keys. Adapter: :class:`LegacyConfig` answers them, with
  the values given in the plugin's option table (``--set ext.pcen.n_mels=128``) or the report's.
- 4: an augmentation's per-example draws are CPU tensors when training on a GPU. Adapter: an
  augmentation written for 3 or earlier draws them on the training device, as it expects.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path
from typing import Any

import torch

from esc50.core.config import MOVED_TO_PLUGINS, TaskConfig
from esc50.core.convert import convert
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.contracts import Augmentation, BatchAugmentation, Randomness

# TaskConfig keys of earlier plugin APIs: the last API that had each, its value then (the
# report's) and its type (from the config's record of the keys that moved to plugins).
LEGACY_KEYS: dict[str, tuple[int, Any, Any]] = {
    key: (last, value, kind) for key, (last, value, kind, _) in MOVED_TO_PLUGINS.items()}


def located(obj: Any, root: Path | None) -> str:
    """``Name (file:line)`` of a class or function, the file relative to ``root`` (the folder
    holding the plugin's top-level package) where it lies under it."""
    name = getattr(obj, "__name__", type(obj).__name__)
    try:
        path = Path(inspect.getsourcefile(obj) or "")
        line = inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return name
    shown = path.relative_to(root) if root and path.is_relative_to(root) else path
    return f"{name} ({shown}:{line})"


def config_keys_read(obj: Any) -> list[str]:
    """The moved config keys (:data:`LEGACY_KEYS`) a factory's source reads from its config
    (``config.n_fft``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError):
        return []
    return sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Name) and node.value.id == "config"
                   and node.attr in LEGACY_KEYS})


def porting_notes(api: int, components: list[Any], root: Path | None) -> list[str]:
    """What a package written for plugin API ``api`` must change to be current, for the
    ``components`` (kind and factory of each) it registered: only the changes that apply, each
    naming the class and where it is (files under ``root``)."""
    notes = []
    for component in components:
        factory, kind, where = component.factory, component.kind, located(component.factory, root)
        keys = config_keys_read(factory)
        if kind == "augmentation" and inspect.isclass(factory):
            base = BatchAugmentation if issubclass(factory, BatchAugmentation) else Augmentation
            old_style = factory.forward is not base.forward and factory.apply is base.apply
            if api < 2 and old_style:
                notes.append(f"(API 2) {where}: move its draws into sample(batch_size, "
                             "generator) and its transform into apply(x, chosen, params, "
                             "generator), leaving p to the base class")
            if api < 2 and getattr(factory, "stage", None) == "spec":
                notes.append(f"(API 2) {where}: rename its stage 'spec' to 'features'")
            if api < 4:
                notes.append(f"(API 4) {where}: expect its per-example draws (chosen, what "
                             "sample returns) on the CPU when training on a GPU: move each to "
                             "the batch with to_device(draw, x)")
        moved_in = {2: [k for k in keys if LEGACY_KEYS[k][0] == 1],
                    3: [k for k in keys if LEGACY_KEYS[k][0] == 2]}
        for version, moved in moved_in.items():
            if api < version and moved:
                notes.append(f"(API {version}) {where}: take {', '.join(moved)} as keyword "
                             "options of the factory (with defaults), not config keys")
        if api < 3 and kind == "featurizer" and inspect.isclass(factory) and \
                "min_samples" not in source_of(factory):
            notes.append(f"(API 3) {where}: set min_samples (the samples of one analysis "
                         "window)")
    if api < 3:
        notes.append("(API 3) TaskConfig() leaves sample_rate, num_classes and length_wav unset "
                     "(the dataset fills them in): where the package's own tests build a config, "
                     "use esc50.testing.config() (ESC-50's 44 100 Hz, 50 classes, 5 s, as "
                     "TaskConfig() gave them before) or set them")
    return notes


def source_of(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def legacy_options(api: int, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a component's options into the ones its factory takes and the old config keys an
    API-``api`` factory reads from the config instead (for :class:`LegacyConfig`, converted to
    the type they had)."""
    old = {k: v for k, v in options.items() if k in LEGACY_KEYS and api <= LEGACY_KEYS[k][0]}
    try:
        typed = {k: convert(v, LEGACY_KEYS[k][2]) for k, v in old.items()}
    except ValueError as exc:
        raise Esc50Error(f"option {', '.join(old)}: expected {exc}") from None
    return {k: v for k, v in options.items() if k not in old}, typed


class LegacyConfig:
    """A run's config as a factory written for plugin API ``api`` reads it: the config keys of
    that API that have since moved (:data:`LEGACY_KEYS`) answer with ``given`` values or the
    values they had then; everything else is the run's config."""

    def __init__(self, config: TaskConfig, api: int, given: dict[str, Any]) -> None:
        self._config = config
        self._old = {k: given.get(k, v) for k, (last, v, _) in LEGACY_KEYS.items() if api <= last}

    def __getattr__(self, name: str) -> Any:
        old = self.__dict__.get("_old", {})
        return old[name] if name in old else getattr(self._config, name)

    def __repr__(self) -> str:
        return f"LegacyConfig({self._config!r}, {self._old!r})"


def config_for(config: TaskConfig, api: int, given: dict[str, Any]) -> Any:
    """The config to give a factory written for plugin API ``api``."""
    return LegacyConfig(config, api, given) if api <= 2 else config


def is_forward_style(aug: Augmentation) -> bool:
    """An augmentation written before the draw-then-apply template: it overrides ``forward``
    and implements no ``apply``."""
    base = BatchAugmentation if isinstance(aug, BatchAugmentation) else Augmentation
    kind = type(aug)
    return kind.forward is not base.forward and kind.apply is base.apply


def adapt_augmentation(aug: Augmentation, api: int) -> Augmentation:
    """``aug`` as the current contract expects it (see the module docstring)."""
    if is_forward_style(aug):
        return ForwardAugmentation(aug)
    if api <= 3:
        aug.draws_on_device = True
    return aug


class ForwardAugmentation(Augmentation):
    """An augmentation of plugin API 1 (its own ``forward(x, generator)``, deciding which
    examples to transform itself) under the template: it is called with one generator on the
    training device, its stage ``"spec"`` is ``"features"``, and the examples it changed are
    counted from its output."""

    def __init__(self, inner: Augmentation) -> None:
        super().__init__(getattr(inner, "p", 1.0))
        self.inner = inner
        self.stage = {"spec": "features"}.get(inner.stage, inner.stage)
        self.name = getattr(inner, "name", type(inner).__name__.lower())

    def attach(self, featurizer: Any) -> None:
        self.inner.attach(featurizer)

    def forward(self, x: torch.Tensor, *rest: Any) -> Any:
        *targets, generator = rest
        out = self.inner(x, *targets, Randomness.of(generator).signals)
        changed = out[0] if isinstance(out, tuple) else out
        if isinstance(changed, torch.Tensor) and changed.shape == x.shape:
            self.transformed = self.transformed + (changed != x).flatten(1).any(1).sum()
        self.seen += x.shape[0]
        return out

