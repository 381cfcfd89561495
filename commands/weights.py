"""`esc50 weights`: the published weight files the installed plugins know by name, and what is
cached of them (see :mod:`esc50.core.files.fetch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from esc50.core.errors import Esc50Error
from esc50.core.files.fetch import WeightFile, cached_path, fetch, problem, recorded_sha256
from esc50.core.plugin_api.registry import Registry


def known(registry: Registry, name: str) -> WeightFile:
    """The weights registered as ``name``; else a one-line error listing the names."""
    if name not in registry.weights:
        names = ", ".join(sorted(registry.weights)) or "none"
        raise Esc50Error(f"no weights are registered as {name!r} (names: {names})")
    return registry.weights[name]


def weights_rows(registry: Registry) -> list[dict[str, Any]]:
    """One row per registered file: name, file, where it is published, size, checksum
    (published, or recorded at the first download), licence, citation, who registered it, and
    whether (and where) it is cached."""
    rows = []
    for name, weights in sorted(registry.weights.items()):
        path = cached_path(weights)
        recorded = recorded_sha256(weights)
        checksum = weights.checksum or (f"sha256:{recorded.read_text().split()[0]} (recorded at "
                                        "the first download)" if recorded.is_file() else None)
        rows.append({"name": name, "file": weights.file, "urls": list(weights.urls),
                     "size": weights.size, "checksum": checksum, "licence": weights.licence,
                     "citation": weights.citation, "registered_by": weights.source,
                     "cached": str(path) if path.is_file() else None})
    return rows


def trained_rows(registry: Registry) -> list[dict[str, Any]]:
    """One row per trained model a plugin ships: name, its file in the package, size, sha256,
    licence, description and who registered it."""
    return [{"name": name, "file": str(model.path),
             "size": model.path.stat().st_size if model.path.is_file() else None,
             "checksum": model.checksum, "licence": model.licence,
             "description": model.description, "registered_by": model.source}
            for name, model in sorted(registry.trained.items())]


def download(registry: Registry, name: str, log: Callable[[str], None] = print) -> Path:
    """The file of ``name``, fetched (and verified) unless cached and intact."""
    return fetch(known(registry, name), log)


def verify(registry: Registry, names: list[str]) -> list[tuple[str, str]]:
    """(name, "ok" or what is wrong) for each cached file of ``names`` (all when empty); a file
    that fails is moved aside by :func:`fetch`'s rules the next time it is used."""
    results = []
    for name in names or sorted(registry.weights):
        weights = known(registry, name)
        path = cached_path(weights)
        if not path.is_file():
            results.append((name, "not cached"))
            continue
        wrong = problem(weights, path)
        results.append((name, "ok" if wrong is None else f"does not match: {wrong}"))
    return results


def path_of(registry: Registry, name: str) -> Path:
    """Where the file of ``name`` is (or will be) cached."""
    return cached_path(known(registry, name))
