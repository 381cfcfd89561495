"""Writing files atomically: a temporary file beside the target, fsynced, then renamed over it,
so a crash or a full disk never leaves a half-written file; a failed write is one line saying
the previous version is intact."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Callable

from esc50.core.errors import Esc50Error


class StorageError(Esc50Error):
    """A write the storage refused whatever was written: a full or read-only disk, a quota, a
    failing device. Work that goes on file by file stops on it: every file after would fail."""


STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}
# what a file system says of a name it cannot hold: exFAT and FAT of ':' or '?' (Linux's FUSE
# exFAT says ENOENT), of a name that is not UTF-8 (EILSEQ)
NAME_REFUSED_ERRNOS = {errno.EINVAL, errno.EILSEQ}
# a path that cannot be there: a name refused, or a path longer than the system takes (4096
# bytes on Linux) or with a name over 255 bytes (ENAMETOOLONG)
NEVER_THERE_ERRNOS = NAME_REFUSED_ERRNOS | {errno.ENAMETOOLONG}
NAME_MAX = 255  # bytes in one file name, on the file systems people use
TEMPORARY_SUFFIX = ".tmp"
RANDOM_CHARACTERS = 8  # in the middle of a temporary file's name (mkstemp's)
TEMPORARY_ROOM = len("..") + RANDOM_CHARACTERS + len(TEMPORARY_SUFFIX)  # added to the file's name
# ".<name>.<random characters>.tmp": a temporary file's whole name (temporary_beside)
TEMPORARY_NAME = re.compile(rf"\..*\.[^.]{{{RANDOM_CHARACTERS}}}{re.escape(TEMPORARY_SUFFIX)}",
                            re.DOTALL)


def fitting_name(name: str, room: int = 0) -> str:
    """``name`` where it fits in ``NAME_MAX - room`` bytes, so that ``room`` bytes of suffix can
    follow it; else its beginning, cut between characters, then ``~`` and 16 hex digits of the
    whole name's sha256 (names that differ only past the cut stay apart)."""
    encoded = os.fsencode(name)
    if len(encoded) <= NAME_MAX - room:
        return name
    tag = "~" + hashlib.sha256(encoded).hexdigest()[:16]
    head, size = [], len(tag)
    for char in name:  # a name that is not UTF-8 holds its bytes as surrogates: one each
        size += len(os.fsencode(char))
        if size > NAME_MAX - room:
            break
        head.append(char)
    return "".join(head) + tag


def temporary_prefix(name: str) -> str:
    """The beginning of the temporary files' names for the file ``name`` (a long name cut to
    leave room for the rest: :func:`fitting_name`)."""
    return f".{fitting_name(name, TEMPORARY_ROOM)}."


def temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file next to ``path`` (an open descriptor and its name), with the
    permissions a plain new file gets under the process's umask (mkstemp's are 600); one that
    cannot be made (no folder, no permission, a full or read-only disk) is a one-line error."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name),
                                   suffix=TEMPORARY_SUFFIX)
    except OSError as exc:
        raise_write_error(path, exc)
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


def temporaries_in(folder: Path) -> list[str]:
    """The names of the temporary files in ``folder`` (of writes in progress, or killed
    midway); none in a folder that is not there, or cannot be (:data:`NEVER_THERE_ERRNOS`)."""
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if TEMPORARY_NAME.fullmatch(entry.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        if exc.errno not in NEVER_THERE_ERRNOS:
            raise
        return []


def temporary_of(temporary: str, name: str) -> bool:
    """Whether ``temporary`` (a name :func:`temporaries_in` found) is of a write of ``name``."""
    prefix = temporary_prefix(name)
    return temporary.startswith(prefix) and \
        len(temporary) == len(prefix) + RANDOM_CHARACTERS + len(TEMPORARY_SUFFIX)


def remove_leftovers(folder: Path) -> None:
    """Delete the temporary files that writes killed midway left in ``folder`` (for the one
    process that writes there: another's write in progress would lose its file; the leftovers
    of one file alone: :func:`temporary_of`)."""
    for leftover in temporaries_in(folder):
        (folder / leftover).unlink(missing_ok=True)


def remove_file(path: Path) -> None:
    """Delete ``path`` if it is there; a path that cannot be there (a name its file system
    cannot hold, a path too long: :data:`NEVER_THERE_ERRNOS`) is not."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        if exc.errno not in NEVER_THERE_ERRNOS:
            raise


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``write(handle)`` to a temporary file, fsync it, then rename it over ``path``."""
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        raise_write_error(path, exc)
        raise


def raise_write_error(path: Path, exc: BaseException, cause: OSError | None = None) -> None:
    """Turn a failed write (disk full, file too large, no permission) into a one-line error that
    says the previous version of ``path`` is untouched: a :class:`StorageError` where the storage
    refused it."""
    cause = exc if isinstance(exc, OSError) else cause
    if cause is not None:
        # os.path.exists, not Path.exists: a name too long makes the latter raise
        kept = (f"the previous {path.name} is intact" if os.path.exists(path) else
                "nothing was written")
        kind = StorageError if cause.errno in STORAGE_ERRNOS else Esc50Error
        raise kind(f"cannot write {path}: {why_not_written(cause, path)}; {kept}") from None


def why_not_written(error: OSError, path: Path) -> str:
    """The system's reason for ``error``, raised making ``path``; said to be its name where
    the file system cannot hold it (an invalid name or encoding, or "no such file" where the
    folder exists)."""
    reason = error.strerror or str(error)
    if error.errno in NAME_REFUSED_ERRNOS or (error.errno == errno.ENOENT and
                                              os.path.isdir(path.parent)):
        return f"the file system there refuses this name ({reason})"
    return reason


def write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of a text file (UTF-8). A file name that is not UTF-8 (an archive
    named in Latin-1, say) is written as the bytes the file system holds, as Python reads such
    names (``surrogateescape``)."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8", "surrogateescape")))


def output_folder(path: str | Path, what: str = "output folder") -> Path:
    """``path`` as a folder esc50 may write in, made (with its parents) if missing; a file in
    the way, a read-only disk, no permission or a name too long is one line naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise Esc50Error(f"cannot use {what} {path}: a file is in the way") from None
    except OSError as exc:
        raise Esc50Error(f"cannot create {what} {path}: {why_not_written(exc, path)}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise Esc50Error(f"cannot write in {what} {path}: permission denied (or a read-only "
                         "disk)")
    return path


def plain_name(name: str, what: str, inside: Path) -> str:
    """``name`` once it is a plain folder or file name that stays inside ``inside`` (no '/',
    no '..', not absolute, not empty, at most 255 bytes); else a one-line error."""
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name or \
            os.path.isabs(name):
        raise Esc50Error(f"{what} {name!r} must be a plain name (no '/' or '..'): it is written "
                         f"inside {inside}")
    if len(os.fsencode(name)) > 255:
        raise Esc50Error(f"{what} {name[:40]!r}... is {len(os.fsencode(name))} bytes long; a file "
                         "name holds at most 255")
    return name
