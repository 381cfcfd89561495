"""Published weight files fetched by name into the cache folder, verified, and usable offline.

A :class:`WeightFile` says what a name stands for: the file, every URL its publisher gives,
its size and checksum where published, its licence and citation. :func:`fetch` returns the
cached file, downloading it the first time:

- into ``<cache>/weights/<file>.part``, with a progress bar; a broken download is resumed where
  it stopped when the server honours ranges (HTTP 206), else started again;
- renamed into place only once its size and checksum match; where the publisher gives no
  checksum, the sha256 of the first download is recorded beside it (``<file>.sha256``) and every
  later use is checked against it;
- a file that does not match is never used: it is moved aside (``<file>.rejected-<time>``) and
  the error names the file, both values and what to do.

Offline (``ESC50_OFFLINE=1``, or ``--offline``) no connection is opened: a file not in the cache
is an error naming it, where to get it and where to put it. A machine without network gets the
same advice, not a socket traceback after a long wait.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from esc50.core.errors import Esc50Error
from esc50.core.files.cache import cache_dir
from esc50.core.files.digest import file_digest, file_sha256

OFFLINE_VARIABLE = "ESC50_OFFLINE"
CHUNK = 1 << 20
CONNECT_SECONDS = 20  # a server that says nothing for this long is given up
ALGORITHMS = ("sha256", "md5")


@dataclass(frozen=True)
class WeightFile:
    """A published weight file: its ``name`` in esc50 (``checkpoint=NAME``), the ``file`` name
    it is saved under, every URL it is published at (tried in turn), its ``size`` in bytes and
    ``checksum`` (``"sha256:<hex>"`` or ``"md5:<hex>"``) where the publisher gives them, its
    licence and how to cite it, and who registered it."""

    name: str
    file: str
    urls: tuple[str, ...]
    size: int | None = None
    checksum: str | None = None
    licence: str = ""
    citation: str = ""
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.urls or Path(self.file).name != self.file or not self.file:
            raise ValueError(f"weights {self.name!r}: a plain file name and at least one URL "
                             "are needed")
        if self.checksum is not None:
            algorithm, _, value = self.checksum.partition(":")
            if algorithm not in ALGORITHMS or not value:
                raise ValueError(f"weights {self.name!r}: checksum {self.checksum!r} must be "
                                 "'sha256:<hex>' or 'md5:<hex>'")


def offline() -> bool:
    return os.environ.get(OFFLINE_VARIABLE, "") not in ("", "0")


def weights_dir() -> Path:
    return cache_dir() / "weights"


def cached_path(weights: WeightFile) -> Path:
    return weights_dir() / weights.file


def recorded_sha256(weights: WeightFile) -> Path:
    """Where the sha256 of the first download of a file without a published checksum is kept."""
    return weights_dir() / f"{weights.file}.sha256"


def problem(weights: WeightFile, path: Path) -> str | None:
    """What is wrong with ``path`` as ``weights`` (None: nothing): its size, or its checksum
    against the published one or the one recorded at the first download."""
    size = path.stat().st_size
    if weights.size is not None and size != weights.size:
        return f"it has {size} bytes where {weights.size} are published"
    if weights.checksum is not None:
        algorithm, _, expected = weights.checksum.partition(":")
    elif recorded_sha256(weights).is_file():
        algorithm, expected = "sha256", recorded_sha256(weights).read_text().split()[0]
    else:
        return None
    actual = file_digest(path, algorithm)
    if actual.lower() != expected.lower():
        return f"its {algorithm} is {actual}, not {expected}"
    return None


def set_aside(path: Path) -> Path:
    """Move a file that failed verification out of the way (never used, kept to look at)."""
    aside = path.with_name(f"{path.name}.rejected-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(aside)
    return aside


def fetch(weights: WeightFile, log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """The cached, verified file of ``weights``, downloaded first if it is not there."""
    path = cached_path(weights)
    if path.is_file():
        wrong = problem(weights, path)
        if wrong is None:
            return path
        aside = set_aside(path)
        raise Esc50Error(f"weights {weights.name}: the cached {path} does not match ({wrong}); "
                         f"it is kept aside as {aside.name} and not used: run `esc50 weights "
                         f"download {weights.name}` to fetch it again")
    if offline():
        raise Esc50Error(f"weights {weights.name} ({weights.file}) are not in the cache and "
                         f"esc50 is offline ({OFFLINE_VARIABLE}=1): download {weights.urls[0]} "
                         f"on a machine with network and place it at {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Esc50Error(f"cannot create the weights cache {path.parent}: "
                         f"{exc.strerror}") from None
    failures = []
    for url in weights.urls:
        try:
            _download(url, weights, path.with_name(f"{path.name}.part"), log, progress)
            break
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            failures.append(f"{url}: {reason}")
    else:
        raise Esc50Error(f"weights {weights.name}: could not download {weights.file} "
                         f"({'; '.join(str(f) for f in failures)}); on a machine without "
                         f"network, download it elsewhere and place it at {path}")
    partial = path.with_name(f"{path.name}.part")
    wrong = problem(weights, partial)
    if wrong is not None:
        aside = set_aside(partial)
        raise Esc50Error(f"weights {weights.name}: the download of {weights.file} does not "
                         f"match ({wrong}); it is kept aside as {aside} and not used: try "
                         "again, or download it by hand and compare it with the publisher's "
                         "checksum")
    if weights.checksum is None and not recorded_sha256(weights).is_file():
        digest = file_sha256(partial)
        recorded_sha256(weights).write_text(f"{digest}  {weights.file}\n")
        log(f"weights {weights.name}: no checksum is published; the sha256 of this first "
            f"download ({digest}) is recorded and every later use is checked against it")
    partial.replace(path)
    return path


def _download(url: str, weights: WeightFile, partial: Path, log: Callable[[str], None],
              progress: bool) -> None:
    """``url`` into ``partial``, resuming what an earlier attempt left there where the server
    honours the range asked for."""
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "esc50"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=CONNECT_SECONDS) as response:
        resumed = have and response.status == 206
        if have:
            log(f"weights {weights.name}: resuming the download at byte {have}" if resumed
                else f"weights {weights.name}: the server does not resume; starting again")
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length else weights.size
        with partial.open("ab" if resumed else "wb") as out, tqdm(
                total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                desc=weights.file, disable=not progress) as bar:
            received = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if length and received < int(length):  # the connection dropped: .part is resumed later
            raise ConnectionError(f"the connection dropped after {received} of {length} bytes "
                                  "(run the command again to resume)")
