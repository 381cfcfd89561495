"""What an audio decoder prints itself, kept instead of printed.

libsndfile's MP3 decoder (libmpg123) writes its notes on damaged frames straight to the
process's standard error: many lines a file ("Note: Illegal Audio-MPEG-Header 0x06b2ed69 at
offset 7671.", "[src/libmpg123/layer3.c:...] error: ..."), naming no file, between esc50's own
lines and over its progress bar. Neither libsndfile nor soundfile can turn them off (libsndfile
issue 958). :class:`SoundFile` runs each decoder call (open, read, seek) with file descriptor 2
taken (:func:`captured`) and keeps what the decoder wrote in ``decoder_said``, for esc50 to say
in one line naming the file (:func:`damage_said`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import soundfile as sf

# The lines of libmpg123 that report damage: data it skipped, frames it could not decode. Its
# other lines (a Xing header's size estimate "off by more than 1%") say nothing of the audio.
DAMAGE_MARKS = ("Illegal Audio-MPEG-Header", "Skipped", "error:")

_lock = threading.Lock()
_users = 0  # decoder calls running now, in any thread of the process
_saved: int | None = None  # descriptor 2 as it was before the first of them (None: closed)
_sink: int | None = None  # the file descriptor 2 writes to meanwhile (None: not taken)


def _open_sink() -> int | None:
    """A file for descriptor 2 to write to, in memory where the system allows; None where
    none can be had (a full temporary folder; no ``pread`` on Windows): then the decoder's
    lines are printed, as without esc50, and never cost the file its decoding."""
    if not hasattr(os, "pread"):
        return None
    try:
        if hasattr(os, "memfd_create"):
            return os.memfd_create("esc50-decoder-output")
        with tempfile.TemporaryFile() as file:
            return os.dup(file.fileno())
    except OSError:
        return None


@contextmanager
def captured(lines: list[str]) -> Iterator[None]:
    """Run the ``with`` body with descriptor 2 taken; what is written to it meanwhile is
    appended to ``lines``, not printed. Calls in several threads at once share one capture
    (the descriptor is the process's); each gets what was written during its own call."""
    global _users, _saved, _sink
    with _lock:
        if _users == 0:
            _sink = _open_sink()
            if _sink is not None:
                sys.stderr.flush()  # Python's own lines so far go where they were going
                try:
                    _saved = os.dup(2)
                except OSError:  # no standard error at all: none again afterwards
                    _saved = None
                os.dup2(_sink, 2)
        _users += 1
        start = os.lseek(_sink, 0, os.SEEK_CUR) if _sink is not None else 0
    try:
        yield
    finally:
        with _lock:
            text = b""
            if _sink is not None:
                text = os.pread(_sink, os.lseek(_sink, 0, os.SEEK_CUR) - start, start)
            _users -= 1
            if _users == 0 and _sink is not None:
                if _saved is None:
                    os.close(2)
                else:
                    os.dup2(_saved, 2)
                    os.close(_saved)
                os.close(_sink)
        lines.extend(text.decode(errors="replace").splitlines())


class SoundFile(sf.SoundFile):
    """soundfile's ``SoundFile`` whose decoder's own lines are kept in ``decoder_said``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.decoder_said: list[str] = []
        with captured(self.decoder_said):
            super().__init__(*args, **kwargs)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        with captured(self.decoder_said):
            return super().read(*args, **kwargs)

    def seek(self, *args: Any, **kwargs: Any) -> int:
        with captured(self.decoder_said):
            return super().seek(*args, **kwargs)


def damage_said(lines: list[str]) -> str | None:
    """The decoder's first line that reports damage, and how many such lines there were, in
    a few words; None when none does."""
    damaged = [line for line in lines if any(mark in line for mark in DAMAGE_MARKS)]
    if not damaged:
        return None
    first = damaged[0].split("] ", 1)[-1].removeprefix("Note: ").strip()
    more = f", and {len(damaged) - 1} more such line{'s' * (len(damaged) > 2)}" \
        if len(damaged) > 1 else ""
    return f"its decoder said \"{first}\"{more}"
