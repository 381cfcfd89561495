"""Writing run files atomically, so a crash never leaves a half-written checkpoint behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO

import torch

from esc50.core.errors import Esc50Error


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``write(handle)`` to a temporary file, fsync it, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Save a checkpoint of plain tensors and Python values (loadable with weights_only=True)."""
    atomic_write(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without executing code from it."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """Initialise ``model`` from a state dict file, or from the ``model`` entry of an esc50
    checkpoint. Shapes and names must match the model exactly."""
    if not path.is_file():
        raise Esc50Error(f"weights file {path} does not exist")
    try:
        state = load_checkpoint(path)
    except Exception as exc:  # unpickling errors have many types
        raise Esc50Error(f"weights file {path} cannot be loaded safely: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        raise Esc50Error(f"weights file {path} does not fit the model: "
                         f"{' '.join(' '.join(first[:3]).split())[:300]}") from None
