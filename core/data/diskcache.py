"""An on-disk store of decoded audio, for datasets larger than memory.

One store is a pair of files in the cache folder named by a key: the sha256 of every clip's file
content, in order, with the sample rate and clip length. ``<key>.npy`` holds the int16 clips
[clips, length_wav] and is memory-mapped, so the operating system keeps in memory only the
pages a run touches; ``<key>.json`` holds the valid lengths, the errors of unusable clips and the
size and sha256 of ``<key>.npy``, and is written last, so a store without it is incomplete and is
decoded again. A store whose ``.npy`` no longer has its recorded size or checksum (truncated by a
full disk, zeroed, edited) is reported and decoded again, never trained on. Any change to a
file, the clip list, the sample rate or the length gives another key.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from esc50.core.files.digest import file_sha256
from esc50.core.errors import Esc50Error
from esc50.core.files.write import atomic_write


def content_key(digests: list[str], sample_rate: int, length: int) -> str:
    """A key that changes when any file's bytes (``digests``: each file's sha256, in order), the
    file list, the rate or the length do."""
    key = hashlib.sha256(f"esc50-audio-v3 {sample_rate} {length} {len(digests)}".encode())
    for digest in digests:
        key.update(digest.encode())
    return key.hexdigest()[:32]


class DiskStore:
    """The store of one clip list (the sha256 of each file) at one sample rate and length in
    ``folder``."""

    def __init__(self, folder: Path, digests: list[str], sample_rate: int, length: int) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Esc50Error(f"cannot create audio cache folder {folder}: {exc.strerror}") from None
        key = content_key(digests, sample_rate, length)
        self.waves_path, self.meta_path = folder / f"{key}.npy", folder / f"{key}.json"
        self.shape = (len(digests), length)

    def usable(self, warn: Callable[[str], None]) -> bool:
        """Whether the store is complete and intact; a damaged one is reported through ``warn``
        (it is then decoded again)."""
        if not (self.meta_path.is_file() and self.waves_path.is_file()):
            return False
        try:
            meta = json.loads(self.meta_path.read_text())
            size, digest = meta["npy_bytes"], meta["npy_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            problem = f"{self.meta_path.name} is unreadable"
        else:
            actual = self.waves_path.stat().st_size
            problem = (f"{actual} bytes where {size} were written" if actual != size else
                       "its content changed since it was written"
                       if file_sha256(self.waves_path) != digest else None)
        if problem:
            warn(f"warning: audio cache {self.waves_path} is damaged ({problem}): decoding "
                 "the clips again")
        return problem is None

    def load(self) -> tuple[torch.Tensor, torch.Tensor, dict[int, str]]:
        """Memory-mapped clips, their valid lengths and the errors of unusable clips."""
        meta = json.loads(self.meta_path.read_text())
        # copy-on-write: pages are read from the file on demand and never written back
        waves = np.load(self.waves_path, mmap_mode="c")
        if waves.shape != self.shape or waves.dtype != np.int16:
            raise Esc50Error(f"audio cache {self.waves_path} holds {waves.dtype} {waves.shape}, "
                             f"not int16 {self.shape}: delete it")
        return (torch.from_numpy(waves), torch.tensor(meta["lengths"], dtype=torch.long),
                {int(i): message for i, message in meta["errors"].items()})

    def new_waves(self) -> torch.Tensor:
        """A zeroed, memory-mapped int16 tensor to decode into: a file of this process's own
        until saved (processes under torchrun may decode the same store side by side)."""
        fd, partial = tempfile.mkstemp(dir=self.waves_path.parent,
                                       prefix=f".{self.waves_path.stem}.", suffix=".partial")
        os.close(fd)
        self._partial = Path(partial)
        self._decoding = np.lib.format.open_memmap(self._partial, mode="w+", dtype=np.int16,
                                                   shape=self.shape)
        return torch.from_numpy(self._decoding)

    def save(self, lengths: torch.Tensor, errors: dict[int, str]) -> None:
        """Complete the store: flush the clips decoded into :meth:`new_waves`, then write the
        lengths and errors."""
        self._decoding.flush()
        meta = {"lengths": lengths.tolist(), "errors": {str(i): m for i, m in errors.items()},
                "npy_bytes": self._partial.stat().st_size, "npy_sha256": file_sha256(self._partial)}
        self._partial.replace(self.waves_path)
        atomic_write(self.meta_path, lambda handle: handle.write(json.dumps(meta).encode()))
