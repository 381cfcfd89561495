"""The recordings of a folder tree, their lengths, and which of them each shard (a machine, or a
process under torchrun) takes, so that the shards together label every recording exactly once.

Sources of each choice: recordings are dealt by length, longest first, each to the shard with
the least audio so far (the longest-processing-time rule of list scheduling, Graham 1969: the
busiest shard ends within a third of the best possible time), from a list every shard computes
alike: the same tree, sorted by path, lengths read from the files' headers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from esc50.core.data.audio import opened_audio
from esc50.core.data.clips import AUDIO_EXTENSIONS, split_by_name
from esc50.core.errors import Esc50Error
from esc50.core.files.read import why_not_a_file
from esc50.core.files.tree import walk_tree


@dataclass(frozen=True)
class Recording:
    """One recording: its file, its path under the analysed folder (which its results mirror),
    its length in seconds by its header (0 when the header cannot be read: analysing it says
    why) and its stamp: the file's size in bytes and modification time in nanoseconds when it
    was listed, which its record is checked against (a file still being recorded, or replaced,
    is analysed again)."""

    path: Path
    relative: Path
    seconds: float
    stamp: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Listing:
    """What a folder tree holds: its recordings, sorted by path, and a one-line error for each
    folder in it that could not be listed (no permission, a failing disk), whose recordings are
    not among them."""

    recordings: list[Recording]
    unlisted: list[str]
    not_audio: list[str] = field(default_factory=list)  # other files, by their path under it


def find_recordings(source: Path, skip: Iterable[Path] = ()) -> Listing:
    """Every audio file under ``source`` (or ``source`` itself, one file), walked as
    :func:`walk_tree` walks a tree: links followed, what they reach listed once, hidden names
    and the folders ``skip`` names (what the analysis writes, should it be inside the tree: its
    results, its review clips) left out, and a folder that cannot be listed named in
    :attr:`Listing.unlisted`; ``source`` that holds no audio file is an error."""
    if not source.is_dir():
        problem = why_not_a_file(source)
        if problem is not None:
            raise Esc50Error(f"recordings {source} {problem}")
        return Listing([Recording(source, Path(source.name), header_seconds(source),
                                  file_stamp(source))], [])
    tree = walk_tree(source, skip)
    unlisted = [f"{line}: the recordings in it are not analysed" for line in tree.refusals()]
    found, not_audio = split_by_name(tree.entries, source)
    if not found:
        raise Esc50Error(f"{source}: the folder holds no audio files "
                         f"({', '.join(sorted(AUDIO_EXTENSIONS))})"
                         + (f"; {len(unlisted)} of its folders could not be listed: "
                            f"{unlisted[0]}" if unlisted else ""))
    return Listing([Recording(path, path.relative_to(source), header_seconds(path),
                              file_stamp(path))
                    for path in sorted(found, key=lambda p: p.relative_to(source).as_posix())],
                   unlisted, not_audio)


def file_stamp(path: Path) -> tuple[int, int]:
    """The size in bytes and modification time in nanoseconds of ``path`` ((0, 0) when it
    cannot be read: analysing it says why)."""
    try:
        status = os.stat(path)
    except OSError:
        return 0, 0
    return status.st_size, status.st_mtime_ns


def header_seconds(path: Path) -> float:
    """A recording's length by its header; 0 when the header cannot be read or ``path`` is no
    regular file (a FIFO would block the reading: analysing it says what it is)."""
    try:  # the one checked opening of audio (by its bytes: a name need not be UTF-8)
        with opened_audio(path) as audio:
            return audio.frames / audio.samplerate if audio.samplerate > 0 else 0.0
    except Exception:  # soundfile's errors vary by format; the analysis names the problem
        return 0.0


def shard_share(recordings: list[Recording], index: int, count: int) -> list[Recording]:
    """The recordings shard ``index`` (1-based) of ``count`` takes, longest first: each
    recording, longest first, to the shard with the least audio so far (ties: the lower
    index). Every shard computes the same deal from the same list."""
    loads, shares = [0.0] * count, [[] for _ in range(count)]
    for recording in sorted(recordings, key=lambda r: (-r.seconds, r.relative.as_posix())):
        least = min(range(count), key=lambda k: (loads[k], k))
        shares[least].append(recording)
        loads[least] += recording.seconds
    return shares[index - 1]


def parse_shard(text: str | None, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """The shard this process is, 1-based, and how many there are: ``--shard i/n``, else
    torchrun's RANK and WORLD_SIZE, else 1/1. Both given must agree; WORLD_SIZE alone is refused
    (half a tree is never taken for all of it)."""
    from_env = None
    if "WORLD_SIZE" in environ and "RANK" not in environ and text is None:
        raise Esc50Error(f"WORLD_SIZE={environ['WORLD_SIZE']} is set but RANK is not: run "
                         "under torchrun (it sets both), or give --shard i/n")
    if "WORLD_SIZE" in environ and "RANK" in environ:
        try:
            rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        except ValueError:
            raise Esc50Error(f"RANK={environ['RANK']!r} and WORLD_SIZE="
                             f"{environ['WORLD_SIZE']!r} must be whole numbers") from None
        if not 0 <= rank < world:
            raise Esc50Error(f"RANK={rank} with WORLD_SIZE={world}: torchrun's RANK runs from 0 "
                             "to WORLD_SIZE - 1")
        from_env = (rank + 1, world)
    if text is None:
        shard = from_env or (1, 1)
    else:
        index, sep, count = text.partition("/")
        if not (sep and index.isdigit() and count.isdigit()):
            raise Esc50Error(f"--shard {text!r} must be i/n, e.g. 2/4 (the second of four)")
        shard = (int(index), int(count))
        if from_env is not None and from_env != shard:
            raise Esc50Error(f"--shard {text} and torchrun's RANK/WORLD_SIZE (shard "
                             f"{from_env[0]}/{from_env[1]}) disagree: give one")
    if not 1 <= shard[0] <= shard[1]:
        raise Esc50Error(f"shard {shard[0]}/{shard[1]}: the index runs from 1 to the count")
    return shard
