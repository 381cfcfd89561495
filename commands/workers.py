"""What the worker processes of ``esc50 cv``, ``tune`` and ``analyze --jobs`` share: Ctrl-C
reaches the whole process group, workers included, and only the main process says so; a worker
that ends badly is named by how it ended."""

from __future__ import annotations

import signal
from typing import Any, Callable

from esc50.core.errors import Interrupted

SIGINT_EXIT = 130  # the exit code of a process stopped by Ctrl-C (128 + SIGINT)


def quiet_on_ctrl_c(target: Callable[..., Any], *args: Any) -> None:
    """Run ``target(*args)`` as a worker process's body; Ctrl-C (a KeyboardInterrupt, or the
    trainer's one-line :class:`Interrupted`) ends it without a traceback, with
    :data:`SIGINT_EXIT`, while the main process says "Aborted!" (or what was kept) once."""
    try:
        target(*args)
    except (KeyboardInterrupt, Interrupted):
        raise SystemExit(SIGINT_EXIT) from None


def ended(exit_code: int | None) -> str:
    """How a worker process ended, by its exit code (a negative one: the signal that ended
    it; SIGKILL is also how Linux's out-of-memory killer ends a process)."""
    if exit_code is None or exit_code >= 0:
        return f"ended with exit code {exit_code}"
    try:
        name = signal.Signals(-exit_code).name
    except ValueError:  # a real-time signal has no name
        name = f"signal {-exit_code}"
    return f"was killed by {name}" + (
        " (as the system ends a process when memory runs out: fewer --jobs need less)"
        if -exit_code == signal.SIGKILL else "")
