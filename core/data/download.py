"""`esc50 download`: fetch the official ESC-50 archive, verify it and unpack it."""

from __future__ import annotations

import csv
import hashlib
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from esc50.core.data.audio import opened_audio
from esc50.core.errors import Esc50Error

OFFICIAL_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
CHUNK = 1 << 20


def download_dataset(url: str, dest: Path, sha256: str | None = None,
                     progress: bool = True) -> Path:
    """Download the zip at ``url`` into ``dest``, check it and unpack it; return the dataset
    folder (the one holding ``meta/esc50.csv``). Nothing is left half-written on failure."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "esc50-download.zip.part"
    digest = _fetch(url, archive, progress)
    try:
        if sha256 and digest != sha256.lower():
            raise Esc50Error(f"download from {url} is corrupt: sha256 {digest} != expected {sha256}")
        return _unpack(archive, dest)
    finally:
        archive.unlink(missing_ok=True)


def _fetch(url: str, target: Path, progress: bool) -> str:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="ESC-50",
                      disable=not progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            received = out.tell()
    except (urllib.error.URLError, OSError) as exc:
        target.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise Esc50Error(f"cannot download {url}: {reason}") from exc
    if total is not None and received != total:
        target.unlink(missing_ok=True)
        raise Esc50Error(f"download from {url} was cut short: {received} of {total} bytes")
    return digest.hexdigest()


def _unpack(archive: Path, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise Esc50Error(f"downloaded archive is corrupt: CRC mismatch in {bad}")
            metas = [n for n in zf.namelist() if n.endswith("meta/esc50.csv")]
            if not metas:
                raise Esc50Error("downloaded archive holds no meta/esc50.csv: not an ESC-50 release")
            top = metas[0][: -len("meta/esc50.csv")].rstrip("/")
            staging = dest / ".unpacking"
            shutil.rmtree(staging, ignore_errors=True)
            zf.extractall(staging)
    except zipfile.BadZipFile as exc:
        raise Esc50Error(f"downloaded file is not a zip archive: {exc}") from exc
    root = staging / top if top else staging
    _check_complete(root)
    final = dest / (Path(top).name if top else "ESC-50")
    if final.exists():
        shutil.rmtree(final)
    root.rename(final)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def _check_complete(root: Path) -> None:
    """Every clip the metadata lists is there and has a readable audio header."""
    with (root / "meta" / "esc50.csv").open(newline="") as handle:
        names = [row["filename"] for row in csv.DictReader(handle)]
    for name in names:
        path = root / "audio" / name
        try:
            with opened_audio(path):
                pass
        except Esc50Error as exc:
            raise Esc50Error(f"downloaded dataset is incomplete: {path.name} is missing or "
                             f"unreadable ({exc})") from exc
