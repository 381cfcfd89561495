"""The cache of ``esc50 list-plugins``: the listing of every installed plugin, kept so that it
answers at once once it has run, and the models' parameter counts, made by a process of their
own (:mod:`esc50.core.plugin_api.inventory` builds both).

Building the listing imports every plugin (and so torch, and whatever each plugin imports): a
second or two. Counting each model's weights builds it (on the meta device: shapes without
memory), which can import much more: the Audio Spectrogram Transformer imports
``transformers``, seconds on its own. So the counts are made by a process of their own, started
first so that it runs beside the listing's build, which writes them to their own cache file: a
first pass counts every model that needs no package its plugin module had not imported, a
second pass the others. The first listing waits for the first pass (at most until
``WAIT_FOR_COUNTS`` seconds after it started); a count not ready by then shows as ``...``
(``"counting"`` in ``--json``) and the process finishes it for the next listing; ``--wait``
waits for every count.

The caches hold the result under a key made, without importing any plugin (nor torch), of what
could change it: the Python and esc50 versions, every entry point of the ``esc50`` group with
its distribution and version, and the size and modification time of the files of each plugin
module's folder (its Python and TOML files: the trained models and weight files it registers
are listed in TOML) and of esc50's core. A changed key (a package installed, upgraded or
removed, a plugin edited) builds the listing again; ``refresh`` forces it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from esc50 import __version__
from esc50.core.files.cache import cache_dir
from esc50.core.files.write import atomic_write
from esc50.core.plugin_api.hookspecs import ENTRY_POINT_GROUP

WAIT_FOR_COUNTS = 4.0  # seconds after the listing started (see the module docstring)
COUNTING = "counting"  # a parameter count not ready yet
COUNTER = "esc50.core.plugin_api.inventory"  # the module the counting process runs


def cached_listing(build: Callable[[], dict[str, Any]],
                   count: Callable[[Path], dict[str, int | None]], refresh: bool = False,
                   wait: bool = False) -> dict[str, Any]:
    """``{"plugins": rows, "sources": ..., "trained": ..., "problems": ..., "warnings": ...}``,
    from the cache when nothing it depends on changed, else made by ``build`` and cached (a
    cache folder that cannot be written only costs the time). Each model row's ``parameters`` is its count, None where it
    cannot be built for ESC-50's defaults, or ``COUNTING`` (see the module docstring).
    ``count(path)`` counts here, when the cache cannot be written for a process to count
    into."""
    started = time.monotonic()
    folder = cache_dir() / "listing"
    key = listing_key()
    path, counts_path = folder / f"{key}.json", folder / f"{key}.parameters.json"
    if refresh:
        for stale in (path, counts_path):
            stale.unlink(missing_ok=True)
    counter = start_counter(counts_path) if not counts_path.exists() else None
    found = read_json(path)
    if found is None:
        found = build()
        write_json(path, found)
    if wait:
        wait_for_counter(counts_path)
    elif counter is not None:  # until its first pass is done (or it ended, or time is up)
        while (counter.poll() is None and time.monotonic() < started + WAIT_FOR_COUNTS
               and not (read_json(counts_path) or {}).get("first_pass")):
            time.sleep(0.05)  # it goes on, and what it counts later is the next listing's
    counts = read_json(counts_path)
    if counts is None and counter is None and not counter_running(counts_path):
        counts = {"counted": count(counts_path), "complete": True}  # unwritable cache
    counts = counts or {"counted": {}, "complete": False}
    pending = not counts["complete"] and counter_running(counts_path)
    for row in found["plugins"]:
        if row["kind"] == "model":
            row["parameters"] = counts["counted"].get(row["id"], COUNTING if pending else None)
    if not counts["complete"] and not pending:  # the counter ended before it was done
        found["warnings"].append(
            "the models' parameter counts are not all there ('-'): the counting process ended "
            f"early; its errors are in {log_path(counts_path)} (--refresh counts again)")
    return found


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, values: Any) -> None:
    """Write a cache file; a cache folder that cannot be written only costs the time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: handle.write(json.dumps(values).encode()))
    except Exception:  # noqa: BLE001 - an unwritable cache must not break the listing
        pass


def start_counter(counts_path: Path) -> subprocess.Popen | None:
    """Start the process that counts the models' parameters into ``counts_path``, holding the
    counts' lock while it runs (None: another one holds it, or the cache cannot be written)."""
    try:
        counts_path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(lock_path(counts_path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another listing's counter is running
        os.close(lock)
        return None
    try:
        write_json(counts_path, {"counted": {}, "complete": False})
        with open(log_path(counts_path), "w") as errors:  # what it says goes there
            return subprocess.Popen(  # the lock passes to it and is released when it exits
                [sys.executable, "-m", COUNTER, str(counts_path)],
                pass_fds=(lock,), stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
                start_new_session=True)
    except OSError:
        return None
    finally:
        os.close(lock)


def lock_path(counts_path: Path) -> Path:
    return counts_path.with_suffix(".lock")


def log_path(counts_path: Path) -> Path:
    """Where the counting process's output and errors go."""
    return counts_path.with_suffix(".log")


def counter_running(counts_path: Path) -> bool:
    """Whether a counter holds ``counts_path``'s lock."""
    try:
        with open(lock_path(counts_path), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def wait_for_counter(counts_path: Path) -> None:
    """Until a running counter of ``counts_path`` has finished."""
    try:
        with open(lock_path(counts_path), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
    except OSError:
        pass


def listing_key() -> str:
    """What the listing depends on (see the module docstring), hashed; imports no plugin."""
    digest = hashlib.sha256(f"{sys.version} esc50 {__version__}".encode())
    core = importlib.util.find_spec("esc50.core")
    files = set(Path(core.submodule_search_locations[0]).rglob("*.py")) if core else set()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "-"
        digest.update(f"{ep.name}={ep.value} {dist}\n".encode())
        files |= module_files(ep.value.split(":")[0])
    for file in sorted(files):
        stat = file.stat()
        digest.update(f"{file} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def module_files(module: str) -> set[Path]:
    """The files a plugin module's listing may depend on: its package folder's Python and TOML
    files (a
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
        return {*origin.parent.glob("*.py"), *origin.parent.glob("*.toml")}
    return {origin}


