"""`esc50 list-plugins` output: the listing (from its cache, :mod:`esc50.core.plugin_api.listing`)
as a table or with every option. Nothing here imports a plugin (nor torch) when the cache
answers: the inventory is imported only to build the listing again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esc50.core.plugin_api.listing import COUNTING, cached_listing


def listing(refresh: bool = False, wait: bool = False) -> dict[str, Any]:
    """The listing (:func:`esc50.core.plugin_api.listing.cached_listing`)."""
    return cached_listing(build, count, refresh, wait)


def build() -> dict[str, Any]:
    from esc50.core.plugin_api.inventory import build_listing

    return build_listing()


def count(counts_path: Path) -> dict[str, int | None]:
    from esc50.core.plugin_api.inventory import count_parameters

    return count_parameters(counts_path)


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
    # be built for them; "...": still being counted)
    header = ["KIND", "ID", "PACKAGE", "PARAMS", "DESCRIPTION"]
    lines = [[r["kind"], r["id"], f"{r['package']} {r['version']}".strip(),
              _params_text(r.get("parameters")), r["description"]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
                     for line in [header, *lines])


def _params_text(count: int | str | None) -> str:
    if count == COUNTING:
        return "..."
    if count is None:
        return "-"
    return f"{count / 1e6:.2f}M" if count >= 1e6 else f"{count / 1e3:.1f}k"


