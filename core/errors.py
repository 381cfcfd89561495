"""The one exception type users see: its message is a single line naming what is wrong."""

from __future__ import annotations

import difflib
import importlib
import unicodedata
from types import ModuleType
from typing import Iterable


def one_line(text: str) -> str:
    """``text`` with its control characters and line breaks written as escapes (``\\n``,
    ``\\t``, ``\\x1b``): a file name holding one prints on one line, and cannot move the
    terminal's cursor or colour its text."""
    return "".join(c.encode("unicode_escape").decode("ascii")
                    if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


class Esc50Error(Exception):
    """A user-facing error (bad input, bad option, missing data); the CLI prints it on one line,
    whatever the names in it hold (:func:`one_line`)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(one_line(a) if isinstance(a, str) else a for a in args))


class Interrupted(Esc50Error):
    """Ctrl-C, said in one line with what was kept. Code that goes on after an error (the next
    trial of a study, say) stops on this one: the user asked everything to stop."""


def did_you_mean(word: str, names: Iterable[str], cutoff: float = 0.6) -> str:
    """"did you mean a, b?" with up to three of ``names`` close to ``word`` (a typo's hint in an
    error), or "" when none is."""
    close = difflib.get_close_matches(word, list(names), n=3, cutoff=cutoff)
    return f"did you mean {', '.join(close)}?" if close else ""


def optional_module(name: str, install: str) -> ModuleType:
    """The optional package ``name``, imported where it is asked for; missing, a one-line error
    saying what to install."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise Esc50Error(f"this needs {name}: pip install {install}") from None
