"""What the worker processes of ``esc50 cv``, ``tune`` and ``analyze --jobs`` share: Ctrl-C
reaches the whole process group, workers included, and only the main process says so; a worker
that ends badly is named by how it ended; ``cv`` and ``analyze`` talk with each worker through a
pipe of its own (:func:`start_worker`, :func:`received`)."""

from __future__ import annotations

import signal
from multiprocessing import connection, resource_tracker
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any, Callable, Hashable, Iterator, Mapping, TypeVar

from esc50.core.errors import Interrupted

SIGINT_EXIT = 130  # the exit code of a process stopped by Ctrl-C (128 + SIGINT)


def quiet_on_ctrl_c(target: Callable[..., Any], *args: Any) -> None:
    """Run ``target(*args)`` as the body of a worker process started by :func:`start_quietly`;
    Ctrl-C (a KeyboardInterrupt, or the trainer's one-line :class:`Interrupted`) ends it without
    a traceback, with :data:`SIGINT_EXIT`, while the main process says "Aborted!" (or what was
    kept) once. A Ctrl-C held back while the process started reaches it here."""
    try:
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        target(*args)
    except (KeyboardInterrupt, Interrupted):
        raise SystemExit(SIGINT_EXIT) from None


def start_quietly(process: SpawnProcess) -> None:
    """Start ``process`` (whose target is :func:`quiet_on_ctrl_c`) with Ctrl-C held back until
    its body runs. A spawned process spends its first second or more importing what its target
    needs, and a Ctrl-C then printed a KeyboardInterrupt traceback from the middle of an import
    (matplotlib's, in ``analyze``). Blocked, not ignored, the signal waits in the new process
    (which inherits the blocked signal) and ends it quietly once its body starts; this process
    gets its own at once, being unblocked as soon as the other is started. multiprocessing's
    resource tracker, which the first process spawned starts, blocks Ctrl-C the same way while
    it starts and then unblocks it: it is started first (bpo-33613 gave it that mask)."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        process.start()
        return
    resource_tracker.ensure_running()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


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


Key = TypeVar("Key", bound=Hashable)


def start_worker(context: SpawnContext, target: Callable[..., Any], *args: Any
                 ) -> tuple[SpawnProcess, connection.Connection]:
    """Start ``target(*args, pipe)`` in a process of its own (:func:`start_quietly`)
    and return it with this process's end of ``pipe``. The worker's end lives in the worker
    alone, so a worker killed at any moment, even halfway through a message, breaks only its
    own pipe and this process sees its end (:func:`received`). With one queue for all workers,
    a worker killed while writing to it held the queue's lock for good and left half a message
    in it: the other workers and the command hung."""
    mine, theirs = context.Pipe()
    process = context.Process(target=quiet_on_ctrl_c, daemon=True, args=(target, *args, theirs))
    start_quietly(process)
    theirs.close()
    return process, mine


def received(pipes: Mapping[Key, connection.Connection]
             ) -> Iterator[tuple[Key, Any | None]]:
    """Wait for messages from the workers' ``pipes``; yield (key, message) for each pipe that
    has one, or (key, None) for one whose worker is gone (its end closed, maybe halfway
    through a message)."""
    ready = connection.wait(list(pipes.values()))
    for key, pipe in [(key, pipe) for key, pipe in pipes.items() if pipe in ready]:
        try:
            yield key, pipe.recv()
        except (EOFError, OSError):
            yield key, None
