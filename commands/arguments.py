"""The Python API checks its arguments as the command line's options are checked: a value of the
wrong type (a string where a list of paths goes, a float where a count goes, a bool for a
number, an array of strings where samples go, None where a function goes) or a count that is
not positive is one line naming the function, the argument and what was expected, before
anything runs."""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from esc50.core.errors import Esc50Error

F = TypeVar("F", bound=Callable[..., Any])
POSITIVE = {"sample_rate", "top_k", "jobs", "fold"}  # TaskConfig's settings (epochs, batch
# size, ...) are checked where the config is, once (TaskConfig.validated)


def checked_arguments(function: F) -> F:
    """Check each argument given to ``function`` against its annotation (see the module
    docstring); annotations this module does not know are not checked."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hints = _hints(function)  # resolved at the first call: the module is complete then
        bound = signature.bind_partial(*args, **kwargs)
        for name, value in bound.arguments.items():
            if name in hints and name != "self":
                problem = mismatch(value, hints[name])
                if problem is None and name in POSITIVE and isinstance(value, int) and value < 1:
                    problem = "a whole number of at least 1"
                if problem is not None:
                    raise Esc50Error(f"{function.__qualname__}({name}={_short(value)}): expected "
                                     f"{problem}")
        return function(*args, **kwargs)

    return typing.cast(F, wrapper)


@functools.cache
def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    return typing.get_type_hints(function)


def mismatch(value: Any, kind: Any) -> str | None:
    """What ``kind`` expects when ``value`` is not one (None: it is, or ``kind`` is not
    checked)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        problems = [mismatch(value, arg) for arg in args]
        return None if any(p is None for p in problems) else " or ".join(
            p for p in problems if p)
    if kind is type(None):
        return None if value is None else "None"
    if origin in (list, tuple):
        if isinstance(value, (str, bytes, Path)) or not isinstance(value, (list, tuple)):
            return f"a list ({_name(kind)}), not {type(value).__name__}"
        if args and args[-1] is not Ellipsis:
            for item in value:
                if (problem := mismatch(item, args[0])) is not None:
                    return f"a list of {problem}"
        return None
    if kind is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an int"
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "a number"
    if kind is bool:
        return None if isinstance(value, bool) else "True or False"
    if kind is str:
        return None if isinstance(value, str) else "a string"
    if kind is Path:
        return None if isinstance(value, Path) else "a path"
    if kind is np.ndarray:
        if not isinstance(value, np.ndarray):
            return "an array"
        return None if value.dtype.kind in "biuf" else f"an array of numbers, not of {value.dtype}"
    if kind is torch.Tensor:
        return None if isinstance(value, torch.Tensor) else "a tensor"
    if origin is collections.abc.Callable:
        return None if callable(value) else "a function"
    return None  # registries and the like: not checked here


def _name(kind: Any) -> str:
    return str(kind).replace("typing.", "").replace("pathlib.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
