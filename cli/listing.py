"""The rows and the text table of `esc50 list-plugins`."""

from __future__ import annotations

from typing import Any

from esc50.core.config import TaskConfig
from esc50.core.registry import Component, Registry


def plugin_rows(registry: Registry) -> list[dict[str, Any]]:
    """One row per component: kind, id, package, version, description (and model size)."""
    rows = []
    shape = _default_input_shape(registry)
    for kind in ("model", "augmentation", "featurizer", "dataset"):
        for component in registry.of_kind(kind):
            row = {"kind": kind, "id": component.id, "package": component.package,
                   "version": component.version, "description": component.description}
            if kind == "model":
                row["parameters"] = _parameter_count(component, shape)
            rows.append(row)
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table with aligned columns."""
    header = ["KIND", "ID", "PACKAGE", "PARAMS", "DESCRIPTION"]
    lines = [[r["kind"], r["id"], f"{r['package']} {r['version']}".strip(),
              _params_text(r.get("parameters")), r["description"]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
                     for line in [header, *lines])


def _params_text(count: int | None) -> str:
    if count is None:
        return "-"
    return f"{count / 1e6:.2f}M" if count >= 1e6 else f"{count / 1e3:.1f}k"


# Model sizes are counted for ESC-50's defaults (50 classes, 5 s at 44.1 kHz).
ESC50_CONFIG = TaskConfig().override(num_classes=50, sample_rate=44_100, length_wav=220_500)


def _default_input_shape(registry: Registry) -> tuple[int, int, int] | None:
    config = ESC50_CONFIG
    try:
        featurizer = registry.create("featurizer", config.featurizer, config)
        return featurizer.output_shape(config.length_wav)
    except Exception:  # a broken default featurizer must not break the listing
        return None


def _parameter_count(component: Component, shape: tuple[int, int, int] | None) -> int | None:
    if shape is None:
        return None
    try:
        model = component.factory(ESC50_CONFIG, shape)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # a model that cannot be built for the defaults shows "-"
        return None
