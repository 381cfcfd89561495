"""The ESC-50 dataset: finding clips and a decoded-audio cache.

A dataset folder holds clips named ``{fold}-{clip}-{take}-{target}.<ext>``, either directly or in
``audio/`` beside ``meta/esc50.csv`` (the official layout). The CSV, when present, gives folds,
targets, class names and the recording each clip was cut from (``src_file``); files are matched
to its rows by name stem, so the official WAV release and a re-encoded copy (ogg, flac) are read
the same way. Without the CSV the ``{clip}`` part of a name identifies the recording.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import soundfile as sf
import torch
from torch.utils.data import Dataset

from esc50.core.audio import load_clip, to_int16
from esc50.core.config import TaskConfig
from esc50.core.digest import file_sha256
from esc50.core.diskcache import DiskStore
from esc50.core.errors import Esc50Error

CLIP_NAME = re.compile(r"^(?P<fold>\d+)-(?P<clip>[^-]+)-(?P<take>[^-]+)-(?P<target>\d+)$")
AUDIO_EXTENSIONS = {f".{ext.lower()}" for ext in sf.available_formats()} | {".oga"}


@dataclass(frozen=True)
class Clip:
    """One labelled clip; clips with the same ``group`` were cut from one recording."""

    path: Path
    fold: int
    target: int
    group: str


@dataclass
class ClipTable:
    """The clips of a dataset folder and its class names (index = target)."""

    root: Path
    clips: list[Clip]
    class_names: list[str]

    @property
    def labels(self) -> list[int]:
        return [c.target for c in self.clips]

    @property
    def folds(self) -> list[int]:
        return [c.fold for c in self.clips]

    def names(self) -> list[str]:
        """Each clip's path relative to the dataset folder (how a run records its split)."""
        return [c.path.relative_to(self.root).as_posix() for c in self.clips]


def find_clips(root: Path, config: TaskConfig) -> ClipTable:
    """Index the clips under ``root`` (see the module docstring for the layouts read)."""
    if not root.is_dir():
        raise Esc50Error(f"dataset folder {root} does not exist")
    audio_dir = root / "audio" if (root / "audio").is_dir() else root
    files = {p.stem: p for p in sorted(audio_dir.iterdir())
             if p.suffix.lower() in AUDIO_EXTENSIONS and fnmatch.fnmatch(p.name, config.keyword)}
    meta = root / "meta" / "esc50.csv"
    clips, names = (_clips_from_csv(meta, files, config.num_classes) if meta.is_file()
                    else _clips_from_names(files))
    if not clips:
        raise Esc50Error(f"no clips matching {config.keyword!r} found in {audio_dir}")
    for clip in clips:
        if not 0 <= clip.target < config.num_classes:
            raise Esc50Error(f"{clip.path}: label {clip.target} is outside 0..{config.num_classes - 1}"
                             f" (num_classes={config.num_classes})")
    class_names = [names.get(t, str(t)) for t in range(config.num_classes)]
    return ClipTable(root, clips, class_names)


def _clips_from_csv(meta: Path, files: dict[str, Path], num_classes: int
                    ) -> tuple[list[Clip], dict[int, str]]:
    """Clips of the CSV rows whose file is present. Every row is checked, present or not: a
    duplicate file name, a target outside 0..num_classes-1 or a category that disagrees with
    another row of the same target is an error naming the row."""
    clips, names = [], {}
    first_row: dict[str, int] = {}  # file stem -> the row that listed it first
    with meta.open(newline="") as handle:
        for row_number, row in enumerate(csv.DictReader(handle), start=2):
            try:
                stem = Path(row["filename"]).stem
                fold, target = int(row["fold"]), int(row["target"])
            except (KeyError, ValueError, TypeError):
                raise Esc50Error(f"{meta}: row {row_number} lacks a valid filename, fold or "
                                 "target") from None
            if stem in first_row:
                raise Esc50Error(f"{meta}: row {row_number} lists {row['filename']} again (first "
                                 f"in row {first_row[stem]}); each clip must appear once")
            first_row[stem] = row_number
            if not 0 <= target < num_classes:
                raise Esc50Error(f"{meta}: row {row_number} has target {target}, outside "
                                 f"0..{num_classes - 1} (num_classes={num_classes})")
            category = row.get("category") or str(target)
            if names.setdefault(target, category) != category:
                raise Esc50Error(f"{meta}: row {row_number} names target {target} {category!r}, "
                                 f"but an earlier row names it {names[target]!r}")
            if stem not in files:
                continue  # a partial copy of the dataset: use the clips that are there
            match = CLIP_NAME.match(stem)
            if match and (int(match["fold"]), int(match["target"])) != (fold, target):
                raise Esc50Error(f"{meta}: row {row_number} says fold {fold}, target {target} but "
                                 f"the file name {stem} says fold {match['fold']}, target "
                                 f"{match['target']}")
            group = row.get("src_file") or (match["clip"] if match else stem)
            clips.append(Clip(files[stem], fold, target, group))
    return clips, names


def _clips_from_names(files: dict[str, Path]) -> tuple[list[Clip], dict[int, str]]:
    clips = []
    for stem, path in files.items():
        match = CLIP_NAME.match(stem)
        if match is None:
            raise Esc50Error(f"{path}: name does not follow {{fold}}-{{clip}}-{{take}}-{{target}}"
                             ".<ext>")
        clips.append(Clip(path, int(match["fold"]), int(match["target"]), match["clip"]))
    return clips, {}


class AudioCache:
    """Every clip decoded once, resampled and padded/cropped, kept as int16: in memory, or with
    ``config.audio_cache`` set, in a memory-mapped store in that folder that later runs on the
    same files reuse (see :mod:`esc50.core.diskcache`).

    A clip that cannot be used (corrupt, empty, silent, NaN) stops the run with its one-line
    error, or, with ``skip_bad=True``, is reported through ``warn`` and listed in ``bad`` (its
    row stays zero: callers leave those indices out)."""

    def __init__(self, clips: list[Clip], config: TaskConfig, threads: int | None = None,
                 skip_bad: bool = False, warn: Callable[[str], None] = print,
                 digests: list[str] | None = None) -> None:
        if config.audio_cache:  # ``digests``: each clip's file sha256, when already known
            digests = digests or [file_sha256(c.path) for c in clips]
            store = DiskStore(Path(config.audio_cache), digests, config.sample_rate,
                              config.length_wav)
        else:
            store = None
        self.location = store.waves_path if store else None
        self.reused = store is not None and store.exists()  # nothing decoded: mapped as stored
        if self.reused:
            self.waves, self.lengths, errors = store.load()
        else:
            self.waves = (store.new_waves() if store else
                          torch.zeros(len(clips), config.length_wav, dtype=torch.int16))
            self.lengths = torch.zeros(len(clips), dtype=torch.long)
            errors = self._decode(clips, config, threads)
            if store is not None:
                store.save(self.lengths, errors)
        if errors and not skip_bad:
            more = f" (and {len(errors) - 1} more bad files)" if len(errors) > 1 else ""
            raise Esc50Error(f"{errors[min(errors)]}{more}; --skip-bad-files leaves bad files "
                             "out with a warning")
        for i in sorted(errors):
            warn(f"warning: skipped {errors[i]}")
        self.bad = frozenset(errors)

    def _decode(self, clips: list[Clip], config: TaskConfig, threads: int | None
                ) -> dict[int, str]:
        """Decode every clip into ``waves`` and ``lengths``; the errors of unusable clips."""
        errors: dict[int, str] = {}

        def decode(i: int) -> None:
            try:
                wav, valid = load_clip(clips[i].path, config.sample_rate, config.length_wav)
            except Esc50Error as exc:
                errors[i] = str(exc)
                return
            self.waves[i] = to_int16(wav)
            self.lengths[i] = valid

        with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
            list(pool.map(decode, range(len(clips))))
        return errors

    def nbytes(self) -> int:
        return self.waves.numel() * self.waves.element_size()


class ClipDataset(Dataset):
    """Items ``{'wav': int16 [T], 'label': int, 'length': int, 'index': int}`` of a subset of the
    cache (``index``: the clip's row in the cache)."""

    def __init__(self, cache: AudioCache, labels: list[int], indices: list[int]) -> None:
        self.cache, self.indices = cache, indices
        self.labels = [labels[i] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, object]:
        i = self.indices[item]
        length = int(self.cache.lengths[i])
        return {"wav": self.cache.waves[i, :length], "label": self.labels[item], "length": length,
                "index": i}
