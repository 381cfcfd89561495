"""`esc50 list-plugins`: the listing of every installed plugin, kept in a cache so that it
answers at once once it has run.

Building the listing imports every plugin (and so torch, and whatever each plugin imports) and
builds each model on the meta device to count its weights: seconds. The cache holds the result
under a key made, without importing any plugin, of what could change it: the Python and esc50
versions, every entry point of the ``esc50`` group with its distribution and version, and the
size and modification time of the files of each plugin module's folder and of esc50's core. A
changed key (a package installed, upgraded or removed, a plugin edited) builds the listing
again; ``--refresh`` forces it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from esc50 import __version__
from esc50.core.files.cache import cache_dir
from esc50.core.files.write import atomic_write

GROUP = "esc50"  # the entry-point group (esc50.core.plugins.registry.ENTRY_POINT_GROUP)


def listing(refresh: bool = False) -> dict[str, Any]:
    """``{"plugins": rows, "sources": ..., "problems": ..., "warnings": ...}``, from the cache
    when nothing it depends on changed, else built and cached (a cache folder that cannot be
    written only costs the time)."""
    path = cache_dir() / "listing" / f"{listing_key()}.json"
    if not refresh:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    built = build_listing()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: handle.write(json.dumps(built).encode()))
    except Exception:  # noqa: BLE001 - an unwritable cache must not break the listing
        pass
    return built


def listing_key() -> str:
    """What the listing depends on (see the module docstring), hashed; imports no plugin."""
    digest = hashlib.sha256(f"{sys.version} esc50 {__version__}".encode())
    core = importlib.util.find_spec("esc50.core")
    files = set(Path(core.submodule_search_locations[0]).rglob("*.py")) if core else set()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "-"
        digest.update(f"{ep.name}={ep.value} {dist}\n".encode())
        files |= module_files(ep.value.split(":")[0])
    for file in sorted(files):
        stat = file.stat()
        digest.update(f"{file} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def module_files(module: str) -> set[Path]:
    """The files a plugin module's listing may depend on: its package folder's Python files (a
    module inside a package), else the module's own file (found without importing it; its
    parent packages are imported)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return set()
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return set()
    origin = Path(spec.origin)
    if spec.submodule_search_locations or "." in module:
        return set(origin.parent.glob("*.py"))
    return {origin}


def build_listing() -> dict[str, Any]:
    """The listing, by importing every plugin."""
    from esc50.core.plugins.registry import load_registry

    registry = load_registry()
    return {"plugins": plugin_rows(registry), "sources": [vars(s) for s in registry.sources],
            "problems": registry.problems, "warnings": registry.warnings}


def plugin_rows(registry: Any) -> list[dict[str, Any]]:
    """One row per component: kind, id, package, version, description, options (name, type,
    default, doc) and, for models, the parameter count for ESC-50's defaults."""
    from esc50.core.plugins.registry import KINDS

    rows = []
    shape = _default_input_shape(registry)
    for kind in KINDS:
        for component in registry.of_kind(kind):
            row = {"kind": kind, "id": component.id, "package": component.package,
                   "version": component.version, "description": component.description,
                   "options": component.option_table()}
            if kind == "model":
                row["parameters"] = _parameter_count(registry, component, shape)
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


def _esc50_config() -> Any:
    """ESC-50's defaults (50 classes, 5 s at 44.1 kHz), for which model sizes are counted."""
    from esc50.core.config import TaskConfig

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
    import torch

    if shape is None:
        return None
    try:
        with torch.device("meta"):
            model = registry.create("model", component.id, _esc50_config(), shape)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # a model that cannot be built for the defaults shows "-"
        return None
