"""What the worker processes of ``esc50 cv``, ``tune`` and ``analyze --jobs`` share: Ctrl-C
reaches the whole process group, workers included, and only the main process says so."""

from __future__ import annotations

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
