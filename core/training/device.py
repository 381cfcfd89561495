"""Where a run trains: the device it asks for, and whether a CPU computes bf16 natively."""

from __future__ import annotations

import os
from contextlib import nullcontext
from functools import cache
from typing import Callable, ContextManager

import torch

from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error

CPU_FLAGS = "/proc/cpuinfo"
NO_BF16_VARIABLE = "ESC50_CPU_BF16"  # "0": float32 on a CPU even where it has bf16
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions for bf16 dot products


def pick_device(name: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU; asking for missing CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)  # one of cpu, cuda, cuda:N (TaskConfig.validated checks)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Esc50Error(f"device {name!r} was asked for but CUDA is not available here")
    return device


@cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX), under which
    bf16 autocast about halves the time of a convolution; elsewhere it is emulated, and slower
    than float32. False where the CPU's flags cannot be read, and where ``ESC50_CPU_BF16=0``
    asks for float32 (to score as a CPU without them does, or to measure such numerics)."""
    if os.environ.get(NO_BF16_VARIABLE) == "0":
        return False
    try:
        flags = open(CPU_FLAGS).read().split()
    except OSError:
        return False
    return any(flag in flags for flag in BF16_FLAGS)


def use_autocast(config: TaskConfig, device: torch.device, log: Callable[[str], None]) -> bool:
    """Whether the run's forward passes run in bf16 autocast: ``amp`` on CUDA, ``cpu_amp`` on
    a CPU that has bf16 instructions (elsewhere a note says why not)."""
    if device.type == "cuda":
        return config.amp
    if config.cpu_amp and not cpu_has_bf16():
        log("note: cpu_amp is on, but this CPU has no bf16 instructions (AVX-512 BF16 or AMX), "
            "where bf16 would be slower: training in float32")
    return config.cpu_amp and cpu_has_bf16()


def autocast(device: torch.device, enabled: bool) -> ContextManager:
    """bf16 autocast on ``device`` when ``enabled``, else nothing."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
