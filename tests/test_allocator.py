"""The allocator setting a training or scoring process turns on (core/training/memory.py): large
freed blocks are reused by the next allocation instead of being handed back to the system and
faulted in page by page again. Counted in minor page faults, each process on its own (the setting
is process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHURN = """
import resource, sys, torch
from esc50.core.training.memory import keep_freed_memory
if sys.argv[1] == "load":  # what every scoring command and esc50.load do first
    import esc50
    esc50.load("esc50-rescnn", warn=lambda _: None)
applied = keep_freed_memory() if sys.argv[1] == "keep" else False

def churn():
    for _ in range(8):  # what each training step does with its batch buffers
        block = torch.ones(16 * 2**20)  # 64 MiB, above glibc's largest mmap threshold
        del block

churn()
rounds = []
for _ in range(3):  # the fewest faults of three rounds: where the heap lands varies
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    churn()
    rounds.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, min(rounds))
"""


def faults(mode: str, **env: str) -> tuple[bool, int]:
    done = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True,
                          env={**os.environ, **env}, check=True)
    applied, count = done.stdout.split()
    return applied == "True", int(count)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_large_blocks_are_reused_instead_of_faulted_in_again():
    block = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")  # the pages of one 64 MiB block
    applied, kept = faults("keep")
    _, plain = faults("plain")
    assert applied
    # Kept: at most one block faulted in again in the best of three rounds (where the heap lands
    # varies between processes, so it may grow once more); returned: all eight in every round.
    assert kept <= block + 1000 and plain >= 8 * block
    switched_off, again = faults("keep", ESC50_KEEP_FREED_MEMORY="0")
    assert not switched_off and again >= 8 * block


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_loading_a_model_to_score_keeps_freed_memory_too():
    block = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    _, kept = faults("load")
    assert kept <= block + 1000
    _, returned = faults("load", ESC50_KEEP_FREED_MEMORY="0")
    assert returned >= 8 * block
