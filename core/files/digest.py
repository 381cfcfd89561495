"""Content digests: the sha256 (or another hashlib digest) of a file's bytes, and of a config's
settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from esc50.core.errors import Esc50Error

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The hex sha256 of the bytes of ``path``; an unreadable file is a one-line error."""
    return file_digest(path, "sha256")


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the bytes of ``path`` by a ``hashlib`` algorithm (sha256, md5, ...);
    an unreadable file is a one-line error."""
    digest = hashlib.new(algorithm)
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise Esc50Error(f"{path}: cannot read ({exc.strerror})") from None
    return digest.hexdigest()


def values_sha256(values: dict[str, Any]) -> str:
    """The hex sha256 of JSON-serialisable ``values``, independent of key order."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
