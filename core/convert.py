"""One string-to-value converter for config keys and plugin options: values typed on the command
line (``--set n_mels=128``, ``--aug noise:p=0.3``) or read from TOML/YAML become the type a
field or a factory parameter declares."""

from __future__ import annotations

import tomllib
import types
import typing
from typing import Any

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def type_name(kind: Any) -> str:
    """How an error message names ``kind`` (``int``, ``float | None``, ``tuple[int, ...]``)."""
    if typing.get_origin(kind) is not None:  # tuple[int, int], float | None, ...
        return str(kind).replace("typing.", "")
    return getattr(kind, "__name__", None) or str(kind)


def toml_array(text: str) -> list[Any] | None:
    """``text`` read as a TOML array (quoted strings may hold commas: aug specs with options);
    None when it is not one (``[noise, gaussian]``, unquoted, is split on its commas)."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return None


def convert(value: Any, kind: Any) -> Any:
    """``value`` as ``kind``: ``X | None`` ("none", "null" or "" give None), ``tuple[X, ...]``
    and ``list[X]`` (a comma-separated string, bracketed or not, or a list), ``bool``
    (true/false, yes/no, on/off, 1/0), ``int`` (no fractional part), ``float``, ``str``,
    ``dict`` (as given). Raises
    ValueError when it is not one."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in
                             ("", "none", "null")):
            return None
        return convert(value, next(a for a in args if a is not type(None)))
    if origin in (tuple, list):
        if isinstance(value, str):  # "1,3", or as TOML writes a list: "[1, 3]", '["a", "b"]'
            text = value.strip()
            value = toml_array(text) if text[:1] + text[-1:] == "[]" else None
            if value is None:
                value = text[1:-1] if text[:1] + text[-1:] in ("[]", "()") else text
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError(type_name(kind))
        converted = [convert(v.strip() if isinstance(v, str) else v, args[0])
                     for v in items if v != ""]
        return tuple(converted) if origin is tuple else converted
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ValueError("a table")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE or text in FALSE:
            return text in TRUE
        raise ValueError("true or false")
    if kind in (int, float, str):
        if isinstance(value, bool) and kind is not str:
            raise ValueError(kind.__name__)
        try:
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return kind(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ValueError(kind.__name__) from None
    return value  # an unannotated or unusual type: passed through as given
