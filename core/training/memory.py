"""Memory: what a run needs against what this process may use, and keeping freed memory for
reuse while training on a CPU.

Keeping freed memory:

glibc hands every freed block above its mmap threshold (at most 32 MiB by default) back to the
operating system, and trims the heap's top above 128 KiB. A training step that allocates the
same large buffers every step (a 64-clip waveform batch is 56 MiB, its STFT 225 MiB) then has
each of their pages faulted in again, and the kernel's time can match the computation's.
Serving large blocks from the heap and not trimming it lets the next step reuse the same pages:
on 2 CPU cores, `python benchmarks/allocator.py` (CRNN steps on the waveform path) went from 1.07
to 0.58 s a step, system time from 5.3 to 0.2 s, minor page faults from 1.7 M to 68 k
(docs/performance.md). The price: the process keeps its peak memory until it exits instead of
giving it back between steps.
"""

from __future__ import annotations

import ctypes
import os

from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
LARGEST_FROM_HEAP = 1 << 30  # blocks up to 1 GiB come from the heap
NEVER_TRIM = (1 << 31) - 1
SWITCH = "ESC50_KEEP_FREED_MEMORY"  # "0" leaves the allocator as it is


def keep_freed_memory() -> bool:
    """Ask glibc to serve blocks up to 1 GiB from the heap and to keep freed memory for reuse
    (process-wide; calling it again changes nothing). Returns whether it applied: not on another
    C library or operating system, nor with ``ESC50_KEEP_FREED_MEMORY=0``."""
    if os.environ.get(SWITCH, "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST_FROM_HEAP)) and \
        bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))


def available_memory() -> int | None:
    """Bytes of memory the system can give (Linux's MemAvailable), None where unknown."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(config: TaskConfig, clips: int, feature_shape: tuple[int, int, int]) -> None:
    """Refuse, before decoding anything, a run whose decoded audio (int16, unless it goes to a
    memory-mapped audio_cache) and cached features (float32) cannot fit in memory."""
    available = available_memory()
    if available is None:
        return
    audio = 0 if config.audio_cache else clips * config.length_wav * 2
    features = clips * 4 * feature_shape[0] * feature_shape[1] * feature_shape[2] \
        if config.cache_features else 0
    if audio + features > 0.9 * available:
        raise Esc50Error(f"{clips} clips of length_wav={config.length_wav} need about "
                         f"{(audio + features) / 2**30:.1f} GiB in memory (decoded audio "
                         f"{audio / 2**30:.1f}, features {features / 2**30:.1f}) but "
                         f"{available / 2**30:.1f} GiB is available: lower length_wav or "
                         "sample_rate, or set audio_cache=DIR and cache_features=false")
