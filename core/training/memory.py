"""Memory: what a run needs, planned against what this process may really use before anything
large is allocated, and freed memory kept for reuse while training or scoring on a CPU.

The plan (:func:`memory_budget`, :func:`check_data_memory`, :func:`plan_steps`,
:func:`plan_batch`, :func:`plan_workers`):
- what this process may use is the least of the system's available memory (MemAvailable), what
  its container (cgroup v2 or v1) still allows, and ``ESC50_MEMORY_LIMIT`` (e.g. ``6G``) minus
  what it holds already; on a GPU, the device's free memory; split in ``ESC50_MEMORY_SHARES``
  shares where processes run side by side (``cv --jobs``, ``tune --jobs``: :func:`share_memory`),
  since they all see the same available memory when they start;
- before decoding: the decoded audio (int16, unless memory-mapped from ``audio_cache``), the
  feature cache and the featurizer's working memory for a chunk of clips, measured on one short
  clip and scaled by the clip length;
- before the first step: a training step (batch preparation, forward, backward) measured on 2
  and 4 real clips by counting the live tensors of every operation (:class:`PeakMeter`),
  extended linearly to the batch, plus the optimizer's state and the moving average. A step
  that does not fit is split into micro-batches whose gradients are accumulated (``accumulate``:
  0 plans it; the effective batch stays ``batch_size``); one that does not fit even as single
  clips is refused, in one line that says what fits;
- before scoring windows in batches (a recording longer than one window, in ``predict``,
  ``analyze`` or a loaded model): one window is scored with its live tensors counted, and as
  many windows are scored at a time as fit, at most 16, with a note when fewer
  (:func:`plan_batch`);
- before decoding clips to score them outside training (``evaluate``, ``package``): one clip
  is scored with its live tensors counted, and as many clips are scored at a time as fit beside
  their decoded audio, at most the run's own scoring batch, with a note when fewer; one line
  when not even one fits (:func:`plan_batch`);
- before starting worker processes (``esc50 analyze --jobs``): each will hold what this
  process holds once it has loaded the model and done the largest piece of the work, so as many
  start as fit, at least two, or the work stays in this process; a note says so
  (:func:`plan_workers`).

Keeping freed memory:

glibc hands every freed block above its mmap threshold (at most 32 MiB by default) back to the
operating system, and trims the heap's top above 128 KiB. A training step that allocates the
same large buffers every step (a 64-clip waveform batch is 56 MiB, its STFT 225 MiB) then has
each of their pages faulted in again, and the kernel's time can match the computation's.
Serving large blocks from the heap and not trimming it lets the next step reuse the same pages:
on 2 CPU cores, `python benchmarks/allocator.py` (CRNN steps on the waveform path) went from 1.07
to 0.58 s a step, system time from 5.3 to 0.2 s, minor page faults from 1.7 M to 68 k
(docs/performance.md). Scoring is no different: every shared pass of ``esc50 analyze`` allocates
the same activations again, and a loaded model (``esc50.load``, every scoring command) keeps
freed memory too: an hour of recordings in float32 with AVX2 alone went from 840 k to 110 k
minor page faults (docs/analyze.md, "Speed"). The price: the process keeps its peak memory until
it exits instead of giving it back between steps.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from esc50.core.config import TaskConfig
from esc50.core.data.audiocache import decoded_bytes
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


LIMIT_VARIABLE = "ESC50_MEMORY_LIMIT"
SHARES_VARIABLE = "ESC50_MEMORY_SHARES"  # processes side by side, each planning within its share
MARGIN = 0.85  # of the budget a plan may use: allocator overheads, what is not counted
GIB = 2**30


def parse_size(text: str) -> int:
    """Bytes in ``6G``, ``512M``, ``2.5GiB``, ``1000000``."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        raise Esc50Error(f"{LIMIT_VARIABLE}={text!r}: expected a size such as 6G or 512M")
    return int(float(match[1]) * 1024 ** " kmgt".index(match[2] or " "))


def _meminfo(field: str) -> int | None:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resident_bytes() -> int:
    """Bytes this process holds in memory now (its resident set)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cgroup_room() -> int | None:
    """What this process's container still allows (limit minus usage), None without a limit."""
    try:
        relative = open("/proc/self/cgroup").read().splitlines()
    except OSError:
        return None
    for line in relative:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        base = Path("/sys/fs/cgroup")
        if parts[0] == "0":  # cgroup v2
            folder, limit_file, usage_file = base / parts[2].lstrip("/"), "memory.max", \
                "memory.current"
        elif "memory" in parts[1].split(","):  # cgroup v1
            folder, limit_file, usage_file = base / "memory" / parts[2].lstrip("/"), \
                "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        try:
            limit = open(folder / limit_file).read().strip()
            usage = int(open(folder / usage_file).read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return max(int(limit) - usage, 0)
    return None


def memory_shares() -> int:
    """In how many shares this process's budget is split (``ESC50_MEMORY_SHARES``, 1 when not
    set): one for each process side by side that plans alike (:func:`share_memory`)."""
    text = os.environ.get(SHARES_VARIABLE, "1")
    if not text.strip().isdigit() or int(text) < 1:
        raise Esc50Error(f"{SHARES_VARIABLE}={text!r}: expected a whole number of at least 1")
    return int(text)


def share_memory(shares: int) -> None:
    """Plan this process's memory within one of ``shares`` shares of what is available: it
    runs beside others started alike (the folds of ``cv --jobs``, the workers of ``tune
    --jobs``), which all see the same available memory when they start. The process that
    starts them passes its own :func:`memory_shares` times their number, so that a share set
    already (commands side by side) is split again."""
    os.environ[SHARES_VARIABLE] = str(shares)


def smallest_limit(source: str, need: float, available: int) -> str:
    """Where ``ESC50_MEMORY_LIMIT`` set the budget: the smallest limit that gives ``need``
    bytes (what the process holds already, plus the need with the plan's margin, in each
    share)."""
    if not source.startswith(LIMIT_VARIABLE):
        return ""
    limit, shares = parse_size(source.split("=", 1)[1].split(",", 1)[0]), memory_shares()
    return (f"; the smallest {LIMIT_VARIABLE} that fits is about "
            f"{(limit + shares * (need / MARGIN - available)) / GIB:.1f}G")


def memory_budget(device: torch.device) -> tuple[int | None, str]:
    """Bytes this process may still allocate on ``device`` (its share: :func:`memory_shares`),
    and where that figure comes from (None: unknown, nothing is planned)."""
    shares = memory_shares()
    split = f", split {shares} ways ({SHARES_VARIABLE})" if shares > 1 else ""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // shares, f"free GPU memory{split}"
    found = {"available memory": _meminfo("MemAvailable"),
             "the container's memory limit": _cgroup_room()}
    if os.environ.get(LIMIT_VARIABLE):
        text, resident = os.environ[LIMIT_VARIABLE], resident_bytes()
        limit = parse_size(text)
        if limit <= resident:
            raise Esc50Error(
                f"{LIMIT_VARIABLE}={text} is below what this process already holds "
                f"({resident / GIB:.2f} GiB: Python, torch and the libraries, before any data): "
                f"the limit covers the whole process, so it must be at least that plus what "
                f"the run needs (try {math.ceil(resident / GIB) + 1}G)")
        found[f"{LIMIT_VARIABLE}={text}, of which this process already holds "
              f"{resident / GIB:.2f} GiB"] = limit - resident
    known = {k: v for k, v in found.items() if v is not None}
    if not known:
        return None, "unknown"
    source = min(known, key=known.get)
    return known[source] // shares, source + split


class PeakMeter(TorchDispatchMode):
    """Counts, while active, the bytes of the live tensors each operation creates (storages
    shared by views counted once), per device type, and their peak: what a piece of work
    needs on top of what existed before it."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """False: torch would otherwise guard the meter against torch.compile, and the guard
        imports all of torch._dynamo (about 880 modules, over a second) on first use. The meter
        measures eager work only (a training step before the model is compiled, a window
        scored)."""
        return False

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[tuple[str, int], list[int]] = {}
        self.current: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def _release(self, key: tuple[str, int]) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.current[key[0]] -= entry[0]
                del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                storage = tensor.untyped_storage()
                key = (tensor.device.type, storage.data_ptr())
                if key not in self.live:
                    self.live[key] = [storage.nbytes(), 0]
                    now = self.current[key[0]] = self.current.get(key[0], 0) + storage.nbytes()
                    self.peak[key[0]] = max(self.peak.get(key[0], 0), now)
                self.live[key][1] += 1
                weakref.finalize(tensor, self._release, key)
        return out


def measure(work: Callable[[], object], device: torch.device) -> int:
    """Peak bytes of the tensors ``work()`` allocates on ``device``'s type."""
    meter = PeakMeter()
    with meter:
        work()
    return meter.peak.get(device.type, 0)


def check_data_memory(config: TaskConfig, clips: int, feature_shape: tuple[int, int, int],
                      featurize_bytes_per_sample: float) -> int:
    """Refuse, before decoding anything, a run whose decoded audio (int16, unless memory-mapped
    from ``audio_cache``), cached features (float32) and featurizing of one clip cannot fit in
    memory; else return how many clips to featurize at a time (at most ``batch_size``)."""
    available, source = memory_budget(torch.device("cpu"))
    length = config.length_wav
    audio = decoded_bytes(clips, config)
    features = clips * 4 * feature_shape[0] * feature_shape[1] * feature_shape[2] \
        if config.cache_features else 0
    per_clip = featurize_bytes_per_sample * length
    if available is None:
        return config.batch_size
    room = MARGIN * available - audio - features
    if room < per_clip:
        raise Esc50Error(
            f"{clips} clips of length_wav={length} samples need about "
            f"{(audio + features + per_clip) / GIB:.1f} GiB in memory (decoded audio "
            f"{audio / GIB:.1f}, features {features / GIB:.1f}, featurizing one clip "
            f"{per_clip / GIB:.1f}) but {available / GIB:.1f} GiB is available ({source}): "
            "lower length_wav or sample_rate, or set audio_cache=DIR and cache_features=false"
            + smallest_limit(source, audio + features + per_clip, available))
    return max(1, min(config.batch_size, int(room // max(per_clip, 1))))


@dataclass(frozen=True)
class StepPlan:
    """How a step of ``batch`` clips is taken: ``accumulate`` micro-batches, and why."""

    accumulate: int
    note: str | None


def plan_steps(config: TaskConfig, batch: int, step_bytes: Callable[[int], int],
               static_bytes: int, device: torch.device) -> StepPlan:
    """How many micro-batches a step of ``batch`` clips (this process's share of
    ``batch_size``) needs. ``step_bytes(b)``: the measured peak of a step of ``b`` clips;
    ``static_bytes``: what the run will hold besides (optimizer state, moving average)."""
    available, source = memory_budget(device)
    if available is None:
        return StepPlan(max(config.accumulate, 1), None)
    small = min(2, batch)
    two, four = step_bytes(small), step_bytes(min(2 * small, batch))
    per_clip = max((four - two) / max(min(2 * small, batch) - small, 1), four / (2 * small))
    fixed = max(two - per_clip * small, 0)
    need = lambda clips: static_bytes + fixed + per_clip * clips  # noqa: E731
    budget = MARGIN * available
    fits = int((budget - static_bytes - fixed) // per_clip) if per_clip > 0 else batch
    if config.accumulate:
        micro = -(-batch // config.accumulate)
        if need(micro) > budget:
            raise Esc50Error(
                f"a step of {micro} clips (batch_size={batch}, accumulate={config.accumulate}) "
                f"needs about {need(micro) / GIB:.1f} GiB on {device.type} but "
                f"{available / GIB:.2f} GiB is available ({source}): " + (
                    f"use accumulate={-(-batch // fits)} (micro-batches of {fits} clips) or "
                    "accumulate=0 to plan it" if fits >= 1 else
                    "even one clip a step does not fit"))
        return StepPlan(config.accumulate, None)
    if need(batch) <= budget:
        return StepPlan(1, None)
    if fits < 1:
        raise Esc50Error(
            f"a training step needs about {need(1) / GIB:.1f} GiB on {device.type} even for one "
            f"clip ({static_bytes / GIB:.1f} GiB of optimizer state and weights besides) but "
            f"{available / GIB:.2f} GiB is available ({source}): use a smaller model, a shorter "
            "length_wav or a lower sample_rate" + smallest_limit(source, need(1), available))
    accumulate = -(-batch // fits)
    micro = -(-batch // accumulate)
    return StepPlan(accumulate, (
        f"memory: a step of {batch} clips needs about {need(batch) / GIB:.1f} GiB on "
        f"{device.type}, {available / GIB:.1f} GiB is available ({source}): training in "
        f"{accumulate} micro-batches of up to {micro} clips with their gradients accumulated "
        f"(the same effective batch of {batch}; batch normalization sees the micro-batches)"))


def plan_batch(most: int, item_bytes: int, item: str, held_bytes: int = 0,
               held: str = "") -> tuple[int, str | None]:
    """How many items (``item``: window, clip) to score at a time, at most ``most``, and a note
    when fewer fit: ``item_bytes`` is what scoring one allocates (its live tensors at their
    peak, counted by :class:`PeakMeter`: an upper bound of what each more one of a batch adds).
    ``held_bytes``: what the process is yet to allocate besides (``held`` says what, such as the
    decoded clips to score); one line when not even one item fits beside it. Without it, one
    item at least: one has just been scored."""
    available, source = memory_budget(torch.device("cpu"))
    if available is None or item_bytes <= 0:
        return most, None
    fits = int((MARGIN * available - held_bytes) // item_bytes)
    if fits >= most:
        return most, None
    if fits < 1 and held_bytes:
        raise Esc50Error(
            f"{held} need about {held_bytes / GIB:.2f} GiB and scoring one {item} about "
            f"{item_bytes / 2**20:.0f} MiB, but {available / GIB:.2f} GiB is available "
            f"({source})" + smallest_limit(source, held_bytes + item_bytes, available))
    size = max(fits, 1)
    besides = f" besides {held} ({held_bytes / GIB:.2f} GiB)" if held_bytes else ""
    return size, (f"memory: scoring a {item} allocates about {item_bytes / 2**20:.0f} MiB and "
                  f"{available / GIB:.2f} GiB is available ({source}){besides}: scoring {size} "
                  f"{item}{'s' if size > 1 else ''} at a time, not {most}")


def plan_workers(jobs: int, each: float, work: str) -> tuple[int, str | None]:
    """How many processes to do ``work`` in, and a note to log when that is fewer than
    ``jobs``: ``jobs`` worker processes where they fit, each holding ``each`` bytes (what this
    process holds, having loaded the model and done the largest piece of the work once); else
    as many as fit, if two or more; else 1, this process alone (which holds what it needs)."""
    available, source = memory_budget(torch.device("cpu"))
    if jobs == 1 or available is None:
        return jobs, None
    fits = min(jobs, int(MARGIN * available // each))
    if fits == jobs:
        return jobs, None
    asked = (f"memory: {jobs} worker processes need about {jobs * each / GIB:.1f} GiB "
             f"({each / GIB:.2f} GiB each for {work}), {available / GIB:.1f} GiB is available "
             f"({source}): ")
    if fits >= 2:
        return fits, f"{asked}running {fits}"
    return 1, f"{asked}running in this process alone"
