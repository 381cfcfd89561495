"""What the installed plugins are, for ``esc50 list-plugins``: a row per component (kind, id,
package, version, description, options), the trained models and weight files, and each model's
parameter count for ESC-50's defaults (:mod:`esc50.core.plugin_api.listing` keeps them in its
cache; ``python -m esc50.core.plugin_api.inventory COUNTS_FILE`` is its counting process)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from esc50.core.config import TaskConfig
from esc50.core.plugin_api.hookspecs import KINDS
from esc50.core.plugin_api.listing import write_json
from esc50.core.plugin_api.registry import load_registry


def build_listing() -> dict[str, Any]:
    """The listing, by importing every plugin."""
    registry = load_registry()
    return {"plugins": plugin_rows(registry), "sources": [vars(s) for s in registry.sources],
            "trained": [{"name": t.name, "description": t.description, "licence": t.licence,
                         "registered_by": t.source} for t in registry.trained.values()],
            "problems": registry.problems, "warnings": registry.warnings}


def plugin_rows(registry: Any) -> list[dict[str, Any]]:
    """One row per component: kind, id, package, version, description and options (name, type,
    default, doc); :func:`listing` adds the models' parameter counts."""
    return [{"kind": kind, "id": component.id, "package": component.package,
             "version": component.version, "description": component.description,
             "options": component.option_table()}
            for kind in KINDS for component in registry.of_kind(kind)]


def count_parameters(counts_path: Path) -> dict[str, int | None]:
    """The counter's work: every model's parameter count for ESC-50's defaults (None: it cannot
    be built for them), written to ``counts_path`` after each model. A first pass counts the
    models that import no package beyond those their plugin modules imported (most, in a
    fraction of a second), a second pass the rest (``"first_pass": true`` in between)."""
    registry = load_registry()
    shape = _default_input_shape(registry)
    counted: dict[str, int | None] = {}
    later = []
    with NoNewPackages() as guard:
        for component in registry.of_kind("model"):
            guard.blocked = False
            count = _parameter_count(registry, component, shape)
            if guard.blocked:
                later.append(component)
            else:
                counted[component.id] = count
    write_json(counts_path, {"counted": counted, "first_pass": True, "complete": False})
    for component in later:
        counted[component.id] = _parameter_count(registry, component, shape)
        write_json(counts_path, {"counted": counted, "first_pass": True, "complete": False})
    write_json(counts_path, {"counted": counted, "first_pass": True, "complete": True})
    return counted


class NoNewPackages:
    """While active, importing a top-level package that is not imported yet raises ImportError
    and sets ``blocked`` (an import finder placed first on ``sys.meta_path``)."""

    def __enter__(self) -> NoNewPackages:
        self.known = {name.split(".")[0] for name in sys.modules}
        self.blocked = False
        sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.meta_path.remove(self)

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] not in self.known:
            self.blocked = True
            raise ImportError(f"{name}: counted in the second pass")
        return None  # the usual finders look for it


def _esc50_config() -> Any:
    """ESC-50's defaults (50 classes, 5 s at 44.1 kHz), for which model sizes are counted."""
    return TaskConfig().override(num_classes=50, sample_rate=44_100, length_wav=220_500)


def _default_input_shape(registry: Any) -> tuple[int, int, int] | None:
    config = _esc50_config()
    try:
        featurizer = registry.create("featurizer", config.featurizer, config)
        return featurizer.output_shape(config.length_wav)
    except Exception:  # a broken default featurizer must not break the listing
        return None


def _parameter_count(registry: Any, component: Any, shape: tuple[int, int, int] | None
                     ) -> int | None:
    """Built on the meta device: shapes without memory, so 140M-weight models cost nothing."""
    if shape is None:
        return None
    try:
        with torch.device("meta"):
            model = registry.create("model", component.id, _esc50_config(), shape)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # a model that cannot be built for the defaults shows "-"
        return None




if __name__ == "__main__":  # the counting process: python -m esc50.core.plugin_api.inventory FILE
    count_parameters(Path(sys.argv[1]))
