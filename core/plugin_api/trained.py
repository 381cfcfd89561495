"""Trained models a plugin package ships, known by name (hook ``register_trained_models``).

A trained model is one esc50 checkpoint file (``esc50 package`` writes one from a run) inside
the package that registers it, with the sha256 the package states for it: every use checks the
file against that digest first, so a modified or damaged file is refused, never loaded. A user
names it wherever a run folder goes (``esc50 predict esc50-rescnn clip.wav``,
``esc50.load("esc50-rescnn")``); a path that exists always wins over a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from esc50.core.errors import Esc50Error
from esc50.core.files.digest import file_sha256

NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class TrainedModel:
    """A trained model by ``name``: its checkpoint file, that file's ``checksum``
    (``"sha256:<hex>"``), a one-line description, the licence of its weights (the data they
    were learned from may restrict their use) and who registered it."""

    name: str
    path: Path
    checksum: str
    description: str = ""
    licence: str = ""
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise ValueError(f"trained model name {self.name!r} must be lower-case letters, "
                             "digits, '.', '_' or '-'")
        if not isinstance(self.checksum, str) or not SHA256.fullmatch(self.checksum):
            raise ValueError(f"trained model {self.name!r}: checksum {self.checksum!r} must be "
                             "'sha256:<64 hex digits>'")

    def verified(self) -> Path:
        """The checkpoint file, once its sha256 matches the registered one; else a one-line
        error naming the file and what to do."""
        if not self.path.is_file():
            raise Esc50Error(f"trained model {self.name}: its file {self.path} is missing; "
                             f"reinstall {self.source or 'the package that registers it'}")
        found = file_sha256(self.path)
        if f"sha256:{found}" != self.checksum:
            raise Esc50Error(f"trained model {self.name}: {self.path} does not match the sha256 "
                             f"its package registers ({self.checksum[7:19]}..., the file has "
                             f"{found[:12]}...): it was modified or damaged; refusing to load "
                             f"it (reinstall {self.source or 'the package that registers it'})")
        return self.path
