"""The results tree of ``esc50 analyze``: what is done, what failed, with which settings.

Beside the result files it keeps, in ``.esc50-analyze/``:

- ``settings.json``: the settings every result in the tree was made with (the model by the
  sha256 of its checkpoints, hop, probability floor, classes, formats, ...). A later command
  with other settings is refused, naming them, so one tree never mixes two analyses.
- ``done/<recording>.json``: a recording's record (its length, segments, top classes, the
  seconds it took, the file's size and modification time), written atomically after every result
  file of it: a recording is done when its record exists and names the file as it is now, so a
  run killed at any moment (SIGKILL included) leaves each recording either done or not started,
  and the same command again labels only what is not done, and what changed since (a file
  still being recorded, or replaced): its record is removed before its results are made again.
- ``failed/<digest>.json``: why a recording could not be analysed; the next run tries it
  again.
- ``claims/<digest>.lock``: locked by the process analysing the recording, so that two
  commands on one tree at once (a nightly job still running when the next starts) never
  analyse one recording twice: the second leaves it to the first. One byte long while its
  holder works on the recording: one found so was held by a process that ended midway.
- ``.lock``: held while the combined files are rewritten, so that shards ending together
  never interleave them.

Failures and claims are named by the sha256 of the recording's path (``<digest>``), which
every file system holds, so a recording whose name the results' file system refuses (an exFAT
drive refuses ``12:00.wav`` and a name that is not UTF-8) is claimed, fails in one line and
is recorded as failed, and the others go on (its name stopped the whole analysis).

A recording whose name is too long for a file system's 255 bytes once a suffix is added has its
files and records named by the name's beginning and a digest of it (:func:`fitting_name`); the
records and tables name it in full.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from esc50.commands.analyze.formats import EMBEDDING_SUFFIXES, SUFFIXES
from esc50.commands.analyze.recordings import Recording
from esc50.core.errors import Esc50Error
from esc50.core.files.write import (fitting_name, output_folder, raise_write_error, remove_file,
                                   temporaries_in, temporary_of, write_text)

STATE = ".esc50-analyze"
RESULT_ROOM = max(len(suffix) for suffix in (*SUFFIXES.values(), *EMBEDDING_SUFFIXES))
# Settings recorded since a later release, as the trees made before it were analysed: a tree
# made before ``each_window`` was recorded scored every window alone.
FORMER_SETTINGS = {"each_window": True}


def resize(path: Path, handle: IO[str], size: int) -> None:
    """Set the size of the open file ``path``; a refusal is one line (:func:`raise_write_error`)."""
    try:
        os.ftruncate(handle.fileno(), size)
    except OSError as exc:
        raise_write_error(path, exc)
        raise


def same_setting(recorded: Any, given: Any) -> bool:
    """Whether a recorded setting and a given one are the same; a list (classes, formats, the
    model's checkpoints) is a set: ``--classes dog,rain`` is ``--classes rain,dog``."""
    if isinstance(recorded, list) and isinstance(given, list):
        return sorted(map(str, recorded)) == sorted(map(str, given))
    return recorded == given


class ResultsTree:
    """The results folder ``root`` of an analysis with ``settings``."""

    def __init__(self, root: Path, settings: dict[str, Any],
                 recorded_null: dict[str, Any] | None = None) -> None:
        """``recorded_null``: what a setting recorded as null stands for (trees made before the
        default hop was recorded as its value hold null for it)."""
        self.root = output_folder(root, "--out folder")
        self.state = self.root / STATE
        for part in ("done", "failed", "claims"):
            (self.state / part).mkdir(parents=True, exist_ok=True)
        recorded_file = self.state / "settings.json"
        if recorded_file.is_file():
            try:
                recorded = {**FORMER_SETTINGS, **json.loads(recorded_file.read_text())}
                recorded.update({k: v for k, v in (recorded_null or {}).items()
                                 if k in recorded and recorded[k] is None})
                differing = sorted(k for k in recorded.keys() | settings.keys()
                                   if not same_setting(recorded.get(k), settings.get(k)))
            except (OSError, ValueError, AttributeError, TypeError):
                raise Esc50Error(f"{recorded_file} is damaged (not the settings esc50 analyze "
                                 "writes): give another --out, or delete the folder's "
                                 f"{STATE} to start its analysis again") from None
            if differing:
                raise Esc50Error(f"{root} holds results made with other settings "
                                 f"({', '.join(differing)}): continue with the same command, "
                                 "or give another --out")
        else:
            write_text(recorded_file, json.dumps(settings, indent=2) + "\n")
        self.settings = settings
        self._temporaries: dict[Path, list[str]] = {}  # by folder, as this process found them
        # exFAT, FAT, NTFS and macOS's APFS by default find a file by any case of its name
        self.ignores_case = os.path.isfile(self.state / "SETTINGS.JSON")

    def sharing_files(self, recordings: list[Recording]) -> dict[Recording, Recording]:
        """The recordings whose result files would be another's on this tree's file system
        (``rec.wav`` and ``REC.wav`` where it ignores case), each with the first recording, by
        path, whose files they would be; the others have files of their own."""
        if not self.ignores_case:
            return {}
        first: dict[str, Recording] = {}
        sharing = {}
        for recording in sorted(recordings, key=lambda r: r.relative.as_posix()):
            key = self.result_base(recording.relative).as_posix().casefold()
            if key in first:
                sharing[recording] = first[key]
            else:
                first[key] = recording
        return sharing

    def result_base(self, relative: Path) -> Path:
        """Where a recording's result files go: its path under the analysed folder, mirrored,
        with room for the longest suffix of a result file."""
        return self.root / relative.parent / fitting_name(relative.name, RESULT_ROOM)

    def _done_record(self, relative: Path) -> Path:
        """A recording's record in ``done``, named as the recording (what resumes trees)."""
        name = fitting_name(relative.name, len(".json")) + ".json"
        return self.state / "done" / relative.parent / name

    def _digest_file(self, part: str, relative: Path, suffix: str) -> Path:
        """A recording's file in the ``part`` folder of the state (failed, claims), named by
        its path's sha256."""
        return self.state / part / (hashlib.sha256(os.fsencode(relative.as_posix()))
                                    .hexdigest() + suffix)

    def _failed_records(self, relative: Path) -> list[Path]:
        """A recording's failure record, then where trees made before failures were named by
        digest held it."""
        name = fitting_name(relative.name, len(".json")) + ".json"
        return [self._digest_file("failed", relative, ".json"),
                self.state / "failed" / relative.parent / name]

    def was_done(self, relative: Path) -> bool:
        """Whether a recording has a record, of the file as it is now or as it was."""
        return os.path.isfile(self._done_record(relative))  # False for a name refused

    def is_done(self, recording: Recording) -> bool:
        """Whether ``recording`` has a record of its file as it is now (its stamp: size and
        modification time; a record written before stamps were kept is taken as it is)."""
        try:
            source = json.loads(self._done_record(recording.relative).read_text())["source"]
        except KeyError:
            return True
        except (OSError, ValueError, TypeError):  # no record, or a damaged one: (re)done
            return False
        return tuple(source) == recording.stamp

    def mark_done(self, relative: Path, record: dict[str, Any]) -> None:
        """Record a recording as done (after its result files are written)."""
        path = self._done_record(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(record) + "\n")
        for failed in self._failed_records(relative):
            remove_file(failed)

    def clear_leftovers(self, relative: Path, files: list[Path]) -> None:
        """Delete what a run killed while writing a recording's result ``files`` or records
        left of them (temporary files: the files themselves are whole or absent), and the
        record of an earlier analysis of a file since changed, so that a run killed while
        making its results again leaves it not done; called by the one process that analyses
        the recording, before it starts, while it holds the recording's claim.

        Each folder is looked in once a process (:meth:`_temporaries_in`): a folder of
        thousands of recordings was listed again for each, six times, and the time a recording
        took grew with the folder (74 ms a recording at 20 000 against 5.8 at 1 000:
        benchmarks/results_tree.py). A write killed since then can only have been of a
        recording another process claimed meanwhile, and :meth:`claimed` then has the folders
        looked in again."""
        for path in [*files, self._done_record(relative), *self._failed_records(relative)]:
            temporaries = self._temporaries_in(path.parent)
            for leftover in [name for name in temporaries if temporary_of(name, path.name)]:
                temporaries.remove(leftover)
                remove_file(path.parent / leftover)
        remove_file(self._done_record(relative))

    def _temporaries_in(self, folder: Path) -> list[str]:
        """The temporary files in ``folder`` when this process first looked in it."""
        if folder not in self._temporaries:
            self._temporaries[folder] = temporaries_in(folder)
        return self._temporaries[folder]

    def mark_failed(self, relative: Path, error: str) -> None:
        record, *former = self._failed_records(relative)
        write_text(record, json.dumps({"file": relative.as_posix(), "error": error}) + "\n")
        for path in former:
            remove_file(path)

    def records(self) -> list[dict[str, Any]]:
        """Every done recording's record, by path."""
        return [json.loads(p.read_text()) for p in sorted((self.state / "done").rglob("*.json"))]

    def failures(self) -> list[dict[str, str]]:
        """Every recording that failed and is not done since, by path."""
        return sorted((json.loads(p.read_text()) for p in (self.state / "failed").rglob("*.json")),
                      key=lambda failure: failure["file"])

    @contextmanager
    def claimed(self, relative: Path) -> Iterator[bool]:
        """Whether this process may analyse a recording: True while it holds the recording's
        claim (a lock the system lets go of when the process ends, killed or not), False when
        another process holds it. The claim's file is one byte long (a size set, nothing
        written: a full disk does not refuse it) while its holder works on the recording, and
        empty once the holder is through: one found a byte long was held by a process that
        ended midway (killed), maybe while writing, so the folders are looked in again for what
        it left (:meth:`clear_leftovers`)."""
        claim = self._digest_file("claims", relative, ".lock")
        with claim.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            if os.fstat(handle.fileno()).st_size:
                self._temporaries.clear()
            resize(claim, handle, 1)
            yield True
            resize(claim, handle, 0)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the tree's lock (waiting for another process that holds it)."""
        with (self.state / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
