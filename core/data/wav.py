"""WAV headers: the format chunk (read by standard input's WAV stream decoder and here), and
a WAV file whose header was never finished.

A recorder that lost power, or a program killed while writing, leaves the size of the data
chunk at 0, as written before the first sample, or at what it was when the header was last
updated; a recording longer than 4 GiB leaves it wrapped past 2**32 (a size 32 bits cannot
hold). libsndfile then reads only the frames that size says, no frame at all for 0, and the
rest of the recording would be lost without a word. Where the data chunk's size falls short of
the bytes that follow it and those bytes are not what files carry after their data (chunks:
four printable letters and a size, one after another, as a tagged file's ``LIST`` chunk is;
then maybe an ID3 version 1 tag or zeros padding the file), the samples are taken to run to the
end of the file (whole frames). ffmpeg and sox do so for a size of 0.

Sources: the RIFF WAVE layout (Microsoft/IBM, "Multimedia Programming Interface and Data
Specifications 1.0", 1991: chunks of a four-letter id, a little-endian 32-bit size and a body
padded to an even length; ``fmt `` before ``data``; format tags 1 = PCM, 3 = IEEE float,
6 = A-law, 7 = mu-law) and WAVEFORMATEXTENSIBLE (tag 0xFFFE), whose sub-format GUID starts
with the format tag."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# (format tag, bits per sample) -> soundfile's subtype of raw samples; WAV's 8-bit PCM is
# unsigned
SUBTYPES = {(1, 8): "PCM_U8", (1, 16): "PCM_16", (1, 24): "PCM_24", (1, 32): "PCM_32",
            (3, 32): "FLOAT", (3, 64): "DOUBLE", (6, 8): "ALAW", (7, 8): "ULAW"}
EXTENSIBLE = 0xFFFE
FMT_BYTES = 40  # the longest fmt chunk body (WAVE_FORMAT_EXTENSIBLE's)
ID3V1_BYTES = 128  # an ID3 version 1 tag: "TAG", then title, artist, ... in fixed fields
ZERO_BLOCK = 1 << 20  # bytes read at a time looking for the end of a run of zeros


@dataclass(frozen=True)
class UnfinishedWav:
    """Where the samples of an unfinished WAV file start and how to read them raw."""

    offset: int
    samplerate: int
    channels: int
    subtype: str


def unfinished_wav(path: Path | str | bytes) -> UnfinishedWav | None:
    """The samples of ``path`` if it is a WAV file whose data chunk's size falls short of the
    samples that follow it (0, stale or wrapped: see the module docstring), in a sample format
    soundfile reads raw; None for any other file."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        end, position, layout = os.fstat(handle.fileno()).st_size, 12, None
        while (chunk := chunk_at(handle, position, end)) is not None:
            name, size = chunk
            if name == b"data":
                samples, after = position + 8, position + 8 + size + (size & 1)
                return UnfinishedWav(samples, *layout) if layout and after < end and \
                    not chunks_to_end(handle, after, end) else None
            if name == b"fmt ":
                layout = raw_layout(handle.read(min(size, FMT_BYTES)))
            position += 8 + size + (size & 1)
    return None


def chunk_at(handle: BinaryIO, position: int, end: int) -> tuple[bytes, int] | None:
    """The (id, size) of the chunk header at ``position``; None where no header fits before
    ``end`` (or the file was cut shorter while being read)."""
    if position + 8 > end:
        return None
    handle.seek(position)
    header = handle.read(8)
    return struct.unpack("<4sI", header) if len(header) == 8 else None


def chunks_to_end(handle: BinaryIO, position: int, end: int) -> bool:
    """Whether the bytes from ``position`` to ``end`` are what files carry after their data
    rather than samples: RIFF chunks, one after another, each named with four printable ASCII
    letters, the last ending within a header's length of ``end`` (a pad byte, say); then,
    maybe, an ID3 version 1 tag (128 bytes from "TAG", which tagging tools append to any file)
    or zeros alone (a file padded to its disk's cluster). Samples are not, but by a chance too
    small to matter: their first four bytes would have to be letters and the sizes would have
    to land at the end."""
    while (chunk := chunk_at(handle, position, end)) is not None:
        if end - position == ID3V1_BYTES and chunk[0][:3] == b"TAG":
            return True
        name, size = chunk
        if not all(0x20 <= letter < 0x7F for letter in name):
            return zeros_to_end(handle, position, end)
        position += 8 + size + (size & 1)
    return position <= end


def zeros_to_end(handle: BinaryIO, position: int, end: int) -> bool:
    """Whether every byte from ``position`` to ``end`` is zero (read until one is not)."""
    handle.seek(position)
    while position < end:
        block = handle.read(min(ZERO_BLOCK, end - position))
        if not block or block.count(0) != len(block):  # a byte not zero (or the file cut)
            return False
        position += len(block)
    return True


@dataclass(frozen=True)
class WavFormat:
    """A ``fmt `` chunk: the format tag (an extensible format's sub-format tag), channels,
    sample rate, bytes a frame and bits a sample."""

    tag: int
    channels: int
    rate: int
    block_align: int
    bits: int


def wav_format(fmt: bytes) -> WavFormat | None:
    """The format a ``fmt `` chunk's body says; None when it is too short to say one."""
    if len(fmt) < 16:
        return None
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID's first two bytes
    return WavFormat(tag, channels, rate, block_align, bits)


def raw_layout(fmt: bytes) -> tuple[int, int, str] | None:
    """(sample rate, channels, soundfile subtype) of a ``fmt `` chunk's body, or None for a
    format soundfile cannot read raw (compressed ones)."""
    layout = wav_format(fmt)
    subtype = SUBTYPES.get((layout.tag, layout.bits)) if layout else None
    return (layout.rate, layout.channels, subtype) if subtype and layout.channels else None


class SamplesOf:
    """The file ``handle`` seen from ``offset`` on, where its samples start: what soundfile
    reads as raw audio (it seeks, tells and reads)."""

    def __init__(self, handle: BinaryIO, offset: int) -> None:
        self.handle, self.offset = handle, offset
        handle.seek(offset)

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        self.handle.seek(position + self.offset if whence == os.SEEK_SET else position, whence)
        return self.tell()

    def tell(self) -> int:
        return self.handle.tell() - self.offset

    def read(self, count: int = -1) -> bytes:
        return self.handle.read(count)
