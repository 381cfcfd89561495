"""The median time of a call, after one call to warm up: what the benchmarks that time a
function against a reference in the same run report."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(call: Callable[[], object], repeats: int = 9) -> float:
    """The median of ``repeats`` timed calls of ``call``, after one untimed call."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
