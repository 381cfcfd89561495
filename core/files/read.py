"""Reading a file a user names, through one check: it must be a regular file (a FIFO or a device
would block or never end; a folder, a broken link or nothing at all is an error), named by a
relative or an absolute path alike; every failure is one line naming the file and what is wrong
with it. Text tables (CSV) are read field by field with the row named in any error.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import sys
from pathlib import Path

from esc50.core.errors import Esc50Error

# A field of a metadata table may be as long as a file may be: no 128 KiB limit (csv's default).
csv.field_size_limit(sys.maxsize)


def why_not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (None: it is a regular file)."""
    try:
        mode = os.stat(path).st_mode  # follows links: a link to a file is that file
    except FileNotFoundError:
        return "is a broken link" if os.path.islink(path) else "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of its path is a file)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
             stat.S_ISSOCK: "a socket"}
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file"


def checked_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as an absolute path, once it is known to be a regular file; else a one-line
    error naming ``what`` and the path."""
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    problem = why_not_a_file(path)
    if problem is not None:
        raise Esc50Error(f"{what} {path} {problem}")
    return path


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The bytes of a checked regular file."""
    path = checked_file(path, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise Esc50Error(f"{what} {path} cannot be read ({exc.strerror})") from None


def read_text(path: str | Path, what: str = "file") -> str:
    """The text of a checked regular file: UTF-8 (with or without a byte-order mark), else
    Latin-1 for bytes that are not UTF-8; NUL bytes are refused, naming the line."""
    data = read_bytes(path, what)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\0" in text:
        line = text[:text.index("\0")].count("\n") + 1
        raise Esc50Error(f"{what} {Path(path)}: line {line} holds a NUL byte: not a text file")
    return text


def read_table(path: str | Path, what: str = "metadata table") -> list[dict[str, str]]:
    """The rows of a CSV table as dicts, read the way spreadsheets write them: UTF-8 or
    Latin-1, comma, semicolon or tab delimited (from the header line), spaces around names and
    values dropped. A row with more fields than the header, a header that names a column twice
    or none, or anything the csv module refuses, is one line naming the file and the row."""
    text = read_text(path, what)
    header = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=header.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[dict[str, str]] = []
    try:
        names = [name.strip() for name in next(reader, [])]
        if not names or not any(names) or len(set(names)) != len(names):
            raise Esc50Error(f"{what} {Path(path)}: its header line ({header[:80]!r}) must name "
                             "each column once")
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue  # a blank line
            if len(fields) > len(names):
                raise Esc50Error(f"{what} {Path(path)}: row {reader.line_num} has {len(fields)} "
                                 f"fields where the header names {len(names)}")
            values = [field.strip() for field in fields] + [""] * (len(names) - len(fields))
            rows.append(dict(zip(names, values)))
    except csv.Error as exc:
        raise Esc50Error(f"{what} {Path(path)}: row {reader.line_num}: {exc}") from None
    return rows
