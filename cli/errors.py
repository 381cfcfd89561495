"""How a command fails: an :class:`Esc50Error` is one line (click's ``Error: ...``) and exit
status 1; the traceback only when asked for."""

from __future__ import annotations

import functools
import os
import traceback
from typing import Any, Callable

import click

from esc50.core.errors import Esc50Error, one_line

DEBUG_VARIABLE = "ESC50_DEBUG"


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an Esc50Error into click's one-line ``Error: ...`` and exit status 1, and so an
    OSError that no check foresaw (the file system refusing a path: a name too long, say),
    naming the file; with ``--traceback`` (or ESC50_DEBUG=1) the full traceback, the causes'
    included, comes first. A closed pipe (``esc50 ... | head``) is left to Python."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (Esc50Error, OSError) as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                traceback.print_exception(exc)
            text = str(exc) if isinstance(exc, Esc50Error) else system_refusal(exc)
            raise click.ClickException(text) from None
    return wrapper


def system_refusal(exc: OSError) -> str:
    """An OSError as one line: the file (or both files of a rename) and the system's reason."""
    names = [os.fsdecode(name) for name in (exc.filename, exc.filename2) if name is not None]
    reason = exc.strerror or " ".join(str(exc).split())
    return one_line(f"{' -> '.join(names)}: {reason}" if names else reason)
