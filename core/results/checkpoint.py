"""Writing run files atomically, so a crash never leaves a half-written checkpoint behind, and
loading checkpoints safely: checksum verified, no code executed."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import IO, Any

import torch

from esc50.core.files.digest import file_sha256
from esc50.core.errors import Esc50Error
from esc50.core.files.read import checked_file
from esc50.core.files.write import atomic_write, raise_write_error, temporary_beside


class _HashingWriter:
    """A write-only file wrapper that feeds everything written into a hash."""

    def __init__(self, handle: IO[bytes], digest: Any) -> None:
        self.handle, self.digest = handle, digest
        self.error: OSError | None = None  # torch.save hides the OSError of a failed write

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


RUN_CHECKPOINTS = ("last.pt", "best.pt")  # always written with a sidecar


def checksum_file(path: Path) -> Path:
    """The sidecar holding the sha256 of ``path`` (one hex digest a line)."""
    return path.with_name(path.name + ".sha256")


def _known_digests(path: Path) -> list[str]:
    sidecar = checksum_file(path)
    return sidecar.read_text().split() if sidecar.is_file() else []


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Save a checkpoint of plain tensors and Python values (loadable with weights_only=True),
    atomically, with its sha256 in a sidecar file. The sidecar lists the old and the new digest
    while the file is being replaced, so a kill at any moment leaves a checkpoint that loads."""
    digest = hashlib.sha256()
    fd, tmp = temporary_beside(path)
    writer = None
    try:
        with os.fdopen(fd, "wb") as handle:
            writer = _HashingWriter(handle, digest)
            torch.save(state, writer)
            handle.flush()
            os.fsync(handle.fileno())
        new = digest.hexdigest()
        write_digests = lambda digests: atomic_write(  # noqa: E731
            checksum_file(path), lambda h: h.write(("\n".join(digests) + "\n").encode()))
        write_digests([new, *_known_digests(path)[:1]])
        os.replace(tmp, path)
        write_digests([new])
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        raise_write_error(path, exc, writer.error if writer else None)
        raise


TEXT_SUFFIXES = {".toml", ".yaml", ".yml", ".json", ".csv", ".md", ".txt"}  # never checkpoints


def load_checkpoint(path: Path) -> Any:
    """Load a checkpoint without executing code from it, after checking it against its sha256
    sidecar when it has one. Every failure is a one-line Esc50Error."""
    path = checked_file(path, "checkpoint")  # a FIFO would block the checksum for ever
    if path.suffix.lower() in TEXT_SUFFIXES:
        raise Esc50Error(f"{path} is a {path.suffix.lstrip('.').upper()} file (a run's config or "
                         f"metrics), not a checkpoint: give the run folder ({path.parent}), whose "
                         "last.pt is loaded, or a .pt checkpoint")
    sidecar = checksum_file(path)
    digests = _known_digests(path)
    if sidecar.is_file() and not digests:
        raise Esc50Error(f"checkpoint {path}: its checksum file {sidecar.name} is empty, so the "
                         "checkpoint cannot be verified; refusing to load it")
    if not sidecar.is_file() and path.name in RUN_CHECKPOINTS:
        raise Esc50Error(f"checkpoint {path} has no {sidecar.name} (deleted?), so it cannot be "
                         "verified; refusing to load it. If you trust the file: sha256sum "
                         f"{path.name} > {sidecar.name}")
    if digests:
        if file_sha256(path) not in digests:
            raise Esc50Error(f"checkpoint {path} does not match its checksum in "
                             f"{checksum_file(path).name}: it was truncated or modified; refusing "
                             "to load it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise Esc50Error(f"{path} holds Python objects that only arbitrary code execution "
                             "could load; refused (esc50 loads tensors and plain values "
                             "only)") from None
        raise Esc50Error(f"{path} is not a PyTorch checkpoint (its bytes are neither a zip "
                         "archive nor a pickle)") from None
    except Exception as exc:  # torch.load fails in many ways on bytes that are no checkpoint
        raise Esc50Error(f"{path} is not a readable checkpoint (truncated or not a PyTorch file): "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}") from None


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """Initialise ``model`` from a state dict file, or from the ``model`` entry of an esc50
    checkpoint. Shapes and names must match the model exactly."""
    state = load_checkpoint(checked_file(path, "weights file"))
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        raise Esc50Error(f"weights file {path} does not fit the model: "
                         f"{' '.join(' '.join(first[:3]).split())[:300]}") from None
