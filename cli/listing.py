"""The rows and the text table of `esc50 list-plugins`."""

from __future__ import annotations

from typing import Any

import torch

from esc50.core.config import TaskConfig
from esc50.core.plugins.registry import KINDS, Component, Registry


def plugin_rows(registry: Registry) -> list[dict[str, Any]]:
    """One row per component: kind, id, package, version, description, options (name, type,
    default) and, for models, the parameter count for ESC-50's defaults."""
    rows = []
    shape = _default_input_shape(registry)
    for kind in KINDS:
        for component in registry.of_kind(kind):
            row = {"kind": kind, "id": component.id, "package": component.package,
                   "version": component.version, "description": component.description,
                   "options": component.option_table()}
            if kind == "model":
                row["parameters"] = _parameter_count(component, shape)
            rows.append(row)
    return rows


def render_options(rows: list[dict[str, Any]]) -> str:
    """Each component followed by its options, one per line: name, type, default."""
    lines = []
    for row in rows:
        lines.append(f"{row['kind']} {row['id']} ({row['package']} {row['version']}): "
                     f"{row['description']}")
        for option in row["options"]:
            doc = f"  # {option['doc']}" if option["doc"] else ""
            lines.append(f"    {option['name']}: {option['type']} = {option['default']!r}{doc}")
        if not row["options"]:
            lines.append("    (no options)")
    return "\n".join(lines)


def render_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table with aligned columns."""
    # PARAMS: weights of a model built for ESC-50's defaults ("-": not a model, or it could not
    # be built for them)
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
    """Built on the meta device: shapes without memory, so 140M-weight models cost nothing."""
    if shape is None:
        return None
    try:
        with torch.device("meta"):
            model = component.factory(ESC50_CONFIG, shape)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # a model that cannot be built for the defaults shows "-"
        return None
