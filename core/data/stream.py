"""Audio for prediction from a file, a folder, or standard input (``-``), read in blocks.

Standard input is a WAV stream, read as it arrives (the header's data size is not trusted: a
recorder writing to a pipe cannot know it, so the data runs to the end of the stream), or raw
PCM when a rate is given (``--rate``; signed 16-bit little-endian, ``channels`` interleaved),
e.g. ``arecord -f S16_LE -r 16000 | esc50 predict RUN - --timeline``. Each read returns what the
pipe holds, so a live stream is scored as it arrives.

Sources of each choice: the WAV layout (RIFF chunks, the ``fmt `` chunk read as
:func:`~esc50.core.data.wav.wav_format` reads it) follows Microsoft's
WAVEFORMATEX/WAVEFORMATEXTENSIBLE; RF64 is RIFF with 64-bit sizes (EBU Tech 3306), read alike
since the sizes are not used.
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import torch

from esc50.core.data.audio import MAX_RATE, MIN_RATE, float_samples, mono_blocks, read_mono
from esc50.core.data.clips import named_as_audio
from esc50.core.data.wav import wav_format
from esc50.core.errors import Esc50Error
from esc50.core.files.tree import walk_tree

STDIN = Path("-")
STDIN_NAME = "standard input"
READ_BYTES = 1 << 16  # at most this much is read at a time (less when the pipe holds less)
HEADER_BYTES = 16 << 20  # read before the audio of a WAV stream, at most (its chunks before
# ``data``: format, metadata; a broadcast WAV's bext, iXML or cue chunks take kilobytes)
FORMATS = {1: "pcm", 3: "float", 0xFFFE: "extensible"}
# How other formats begin: piped in, each is named (standard input takes WAV or raw PCM)
OTHER_STREAMS = {b"fLaC": "FLAC", b"OggS": "Ogg (Vorbis or Opus)", b"ID3": "MP3",
                 b"FORM": "AIFF", b"caff": "CAF"}


@dataclass(frozen=True)
class AudioInput:
    """How prediction reads its inputs: files and folders at their own rate, resampled to
    ``sample_rate``; standard input as WAV, or as raw PCM at ``raw_rate`` with ``channels``.
    ``damage``: a file that stops decoding part way is read up to there and noted to it
    (:func:`~esc50.core.data.audio.read_mono`) instead of refused, as is a WAV header that was
    never finished."""

    sample_rate: int
    raw_rate: int | None = None
    channels: int = 1
    damage: Callable[[str], None] | None = None

    def __post_init__(self) -> None:  # checked once, before any input is read
        if self.channels < 1:
            raise Esc50Error(f"--channels {self.channels} must be at least 1")
        if self.raw_rate is not None and not MIN_RATE <= self.raw_rate <= MAX_RATE:
            raise Esc50Error(f"--rate {self.raw_rate} must be a sample rate audio can have "
                             f"({MIN_RATE:,} to {MAX_RATE:,} Hz)")

    def name(self, path: Path) -> str:
        return STDIN_NAME if path == STDIN else str(path)

    def noting(self, notes: list[str]) -> AudioInput:
        """This input with each damage note also kept in ``notes`` (as it is where damage is
        refused)."""
        if self.damage is None:
            return self
        said = self.damage

        def damage(line: str) -> None:
            notes.append(line)
            said(line)
        return replace(self, damage=damage)

    def blocks(self, path: Path) -> Iterator[torch.Tensor]:
        """Mono float32 blocks at ``sample_rate`` (:func:`mono_blocks`); a folder given with no
        audio in it is a one-line error naming it."""
        if path == STDIN:
            if sys.stdin is None or sys.stdin.closed:
                raise Esc50Error(f"{STDIN_NAME} is closed: pipe audio into esc50 (`... | esc50 "
                                 "predict MODEL -`), or give files")
            stream = stream_blocks(sys.stdin.buffer, self.raw_rate, self.channels)
            return mono_blocks(stream, self.sample_rate, STDIN_NAME)
        if os.path.isdir(path):  # a path the system refuses (a name too long) is not one
            if not any(named_as_audio(p) for p in walk_tree(path).entries):
                raise Esc50Error(f"{path}: the folder holds no audio files")
            raise Esc50Error(f"{path} is a folder: a timeline is of one recording (esc50 "
                             "predict lists a folder's files; esc50 analyze labels a whole tree)")
        return read_mono(path, self.sample_rate, damage=self.damage)


def stream_blocks(stream: BinaryIO, raw_rate: int | None = None, channels: int = 1
                  ) -> Iterator[tuple[np.ndarray, int]]:
    """float32 ``[frames, channels]`` blocks and their rate from a WAV stream, or from raw
    signed 16-bit PCM when ``raw_rate`` is given and the stream is not a WAV stream."""
    reader = _Reader(stream)
    head = reader.exactly(4, allow_short=True)
    if head in (b"RIFF", b"RF64"):
        rate, channels, decode, frame = _wav_header(reader)
        if raw_rate is not None and raw_rate != rate:
            raise Esc50Error(f"{STDIN_NAME}: a WAV stream at {rate} Hz, but --rate {raw_rate} "
                             "was given (--rate is for raw PCM: leave it out for WAV)")
    elif raw_rate is None:
        if not head:
            raise Esc50Error(f"{STDIN_NAME} is empty: pipe a WAV stream, or raw PCM with --rate, "
                             "into esc50 (`... | esc50 predict MODEL -`)")
        other = next((name for start, name in OTHER_STREAMS.items() if head.startswith(start)),
                     None)
        if other is not None:
            raise Esc50Error(f"{STDIN_NAME}: a {other} stream, but standard input takes a WAV "
                             "stream or raw PCM (--rate): give the file by its path instead")
        raise Esc50Error(f"{STDIN_NAME}: not a WAV stream (it starts with {head!r}); for raw "
                         "PCM give --rate (signed 16-bit little-endian, --channels interleaved)")
    else:
        rate, decode, frame = raw_rate, _pcm(16), 2 * channels
        reader.unread(head)
    pending = b""
    for data in reader.chunks():
        pending += data
        whole = len(pending) // frame * frame
        if whole:
            yield decode(pending[:whole]).reshape(-1, channels), rate
            pending = pending[whole:]


class _Reader:
    """Reads from a binary stream: exact byte counts for headers (at most ``HEADER_BYTES`` in
    all before the audio), then whatever arrives."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.held = stream, b""
        self.header_left = HEADER_BYTES
        try:
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None  # not an OS-level stream (a test's BytesIO)

    def unread(self, data: bytes) -> None:
        self.held = data + self.held

    def read_some(self) -> bytes:
        """What arrives next (b"" at the end): what the pipe holds, up to READ_BYTES."""
        if self.held:
            data, self.held = self.held, b""
            return data
        if self.fd is not None:
            return os.read(self.fd, READ_BYTES)
        return self.stream.read(READ_BYTES)

    def exactly(self, count: int, allow_short: bool = False, what: str = "header") -> bytes:
        """``count`` bytes of the header (in time linear in ``count``); more than
        ``HEADER_BYTES`` before the audio is a one-line error, not a read without end."""
        if count > self.header_left:
            raise Esc50Error(f"{STDIN_NAME}: the WAV stream's {what} claims {count:,} bytes "
                             f"before its audio; esc50 reads at most {HEADER_BYTES:,} before the "
                             "audio (a damaged or hostile header): convert the stream to a "
                             "plain WAV, or give a file")
        self.header_left -= count
        data = bytearray()
        while len(data) < count:
            more = self.read_some()
            if not more:
                if allow_short:
                    return bytes(data)
                raise Esc50Error(f"{STDIN_NAME}: the WAV stream ended inside its header")
            data += more
        self.unread(bytes(data[count:]))
        return bytes(data[:count])

    def chunks(self) -> Iterator[bytes]:
        while data := self.read_some():
            yield data


def _wav_header(reader: _Reader):
    """The rate, channels, sample decoder and frame size of a WAV stream, read up to its data."""
    reader.exactly(8)  # size, "WAVE"
    fmt = None
    while True:
        chunk, size = struct.unpack("<4sI", reader.exactly(8))
        if chunk == b"data":
            break
        body = reader.exactly(size + size % 2, what=f"{chunk.decode('latin-1')!r} chunk")
        if chunk == b"fmt ":
            fmt = body[:size]
    layout = wav_format(fmt) if fmt is not None else None
    if layout is None:
        raise Esc50Error(f"{STDIN_NAME}: the WAV stream has no format chunk before its data")
    tag, channels, rate, block_align, bits = (layout.tag, layout.channels, layout.rate,
                                              layout.block_align, layout.bits)
    if channels < 1 or block_align < 1:
        raise Esc50Error(f"{STDIN_NAME}: the WAV header says {channels} channel(s) and "
                         f"{block_align}-byte frames")
    if tag == 1 and bits in (8, 16, 24, 32):
        decode = _pcm(bits)
    elif tag == 3 and bits in (32, 64):
        decode = lambda data: np.frombuffer(data, f"<f{bits // 8}").astype(np.float32)  # noqa
    else:
        raise Esc50Error(f"{STDIN_NAME}: WAV format {FORMATS.get(tag, tag)} with {bits}-bit "
                         "samples is not supported on a stream (8/16/24/32-bit PCM, 32/64-bit "
                         "float are); convert it, or give a file")
    if block_align != channels * bits // 8:
        raise Esc50Error(f"{STDIN_NAME}: the WAV header's frame size ({block_align} bytes) does "
                         f"not match {channels} channel(s) of {bits}-bit samples")
    return rate, channels, decode, block_align


def _pcm(bits: int):
    """A decoder of little-endian PCM samples of ``bits`` bits to float32 in [-1, 1)."""
    if bits == 24:
        def decode24(data: bytes) -> np.ndarray:
            raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
            value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
            return (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)
                    ).astype(np.float32)
        return decode24
    dtype = {8: "u1", 16: "<i2", 32: "<i4"}[bits]  # 8-bit WAV samples are unsigned
    return lambda data: float_samples(np.frombuffer(data, dtype), STDIN_NAME)
