"""How long torch's CPU threads spin while they wait for each other: briefly, so that other work
on the cores (a second analysis, a browser, a build) does not stall every operation.

torch's CPU kernels run on libgomp's OpenMP threads. A thread that has done its share of an
operation spins before it sleeps: ``GOMP_SPINCOUNT`` times, 300 000 where neither that nor
``OMP_WAIT_POLICY`` is set (libgomp's manual, "GOMP_SPINCOUNT"), milliseconds on a recent CPU.
While another process holds a core, the thread the others wait for is not running, and each
operation waits out their spinning: on 2 CPU cores beside one busy process, ``esc50 analyze``
took 11x as long as alone and a training epoch 4.1x; with 10 000 spins, 2.0x and 2.5x, and as
long as before alone. Two trainings at once on those cores are the exception: 1.5-1.8x slower
with 10 000 (docs/performance.md, "A CPU shared with other work"). libgomp reads the variable
once, when torch loads it, so :func:`spin_briefly` runs when esc50 is imported, before torch is.
"""

from __future__ import annotations

import os
from typing import MutableMapping

SPINS = 10000  # what an idle thread spins before it sleeps (libgomp's default: 300 000)
WAIT_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")  # how a user sets libgomp's waiting


def spin_briefly(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPINS` in ``environ`` (worker processes inherit it),
    unless ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` is set there: a setting of one's own
    stays."""
    if not any(name in environ for name in WAIT_VARIABLES):
        environ["GOMP_SPINCOUNT"] = str(SPINS)
