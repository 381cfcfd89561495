"""How a command fails: an :class:`Esc50Error` is one line (click's ``Error: ...``) and exit
status 1; the traceback only when asked for."""

from __future__ import annotations

import functools
import os
import traceback
from typing import Any, Callable

import click

from esc50.core.errors import Esc50Error

DEBUG_VARIABLE = "ESC50_DEBUG"


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an Esc50Error into click's one-line ``Error: ...`` and exit status 1; with
    ``--traceback`` (or ESC50_DEBUG=1) the full traceback, the causes' included, comes first."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Esc50Error as exc:
            if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                traceback.print_exception(exc)
            raise click.ClickException(str(exc)) from None
    return wrapper
