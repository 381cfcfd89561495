"""Datasets: the labelled clips a dataset plugin finds in a folder, and a decoded-audio cache.

A dataset plugin (``register_datasets``; ``plugins.esc50`` by default) reads a folder into a
:class:`ClipTable`: each clip's file, label, official fold (0: the dataset has none) and
recording (clips of one recording share a ``group`` and are never split apart), the class
names, and the dataset's default sample rate and clip length. :func:`find_clips` runs the
run's dataset plugin and checks what it found. Files a reader does not use are listed in
``ignored`` (the trainer warns about them), hidden files and macOS ``._*`` files are counted.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import soundfile as sf
import torch
from torch.utils.data import Dataset

from esc50.core.audio import load_clip, to_int16
from esc50.core.config import TaskConfig
from esc50.core.digest import file_sha256
from esc50.core.diskcache import DiskStore
from esc50.core.errors import Esc50Error

# What soundfile decodes, by extension; headerless RAW needs parameters no file carries.
AUDIO_EXTENSIONS = ({f".{ext.lower()}" for ext in sf.available_formats()}
                    | {".oga", ".opus", ".aif"}) - {".raw"}


@dataclass(frozen=True)
class Clip:
    """One labelled clip; clips with the same ``group`` were cut from one recording. ``fold``
    is the dataset's official fold, 0 when it has none."""

    path: Path
    fold: int
    target: int
    group: str


@dataclass
class ClipTable:
    """The clips of a dataset folder, its class names (index = target), the dataset's default
    sample rate and clip length, and the files it left out."""

    root: Path
    clips: list[Clip]
    class_names: list[str]
    sample_rate: int = 44_100
    clip_seconds: float = 5.0
    ignored: list[str] = field(default_factory=list)  # files not used, with why
    hidden: int = 0  # hidden and ._* AppleDouble files skipped

    @property
    def labels(self) -> list[int]:
        return [c.target for c in self.clips]

    @property
    def folds(self) -> list[int]:
        return [c.fold for c in self.clips]

    @property
    def has_folds(self) -> bool:
        return any(c.fold for c in self.clips)

    def names(self) -> list[str]:
        """Each clip's path relative to the dataset folder (how a run records its split)."""
        return [c.path.relative_to(self.root).as_posix() for c in self.clips]


class DatasetReader:
    """Base class of dataset plugins: ``read(root)`` returns the :class:`ClipTable` of a
    folder. A factory ``factory(config, **options) -> DatasetReader`` builds one."""

    def read(self, root: Path) -> ClipTable:
        raise NotImplementedError


def find_clips(root: Path, config: TaskConfig, registry: Any = None) -> ClipTable:
    """The clips of ``root`` as the run's dataset plugin reads them, checked; with
    ``config.k_folds`` a dataset without folds gets that many grouped, stratified folds."""
    if registry is None:
        from esc50.core.registry import load_registry

        registry = load_registry()
    if not root.is_dir():
        raise Esc50Error(f"dataset folder {root} does not exist")
    table = registry.create("dataset", config.dataset, config).read(root)
    if not table.clips:
        raise Esc50Error(f"dataset {config.dataset} found no clips in {root}")
    classes = len(table.class_names)
    for clip in table.clips:
        if not 0 <= clip.target < classes:
            raise Esc50Error(f"{clip.path}: label {clip.target} is outside 0..{classes - 1}")
    if config.num_classes is not None and config.num_classes != classes:
        raise Esc50Error(f"config num_classes={config.num_classes}, but dataset "
                         f"{config.dataset} in {root} has {classes} classes (leave num_classes "
                         "unset: the dataset decides it)")
    if config.k_folds:
        assign_folds(table, config.k_folds, config.seed)
    return table


def leftovers(table: ClipTable, shown: int = 5) -> list[str]:
    """Lines saying which files of the dataset folder were not used, and why."""
    lines = []
    if table.ignored:
        more = f" (and {len(table.ignored) - shown} more)" if len(table.ignored) > shown else ""
        lines.append(f"{len(table.ignored)} file(s) in {table.root} not used: "
                     f"{'; '.join(table.ignored[:shown])}{more}")
    if table.hidden:
        lines.append(f"skipped {table.hidden} hidden file(s) in {table.root} (names starting "
                     "with '.', macOS ._* files among them)")
    return lines


def assign_folds(table: ClipTable, k: int, seed: int) -> None:
    """Give a dataset without folds ``k`` folds in place: recordings are shuffled per class and
    dealt to the fold with the fewest clips of that class, so folds are grouped and stratified."""
    if table.has_folds:
        raise Esc50Error(f"the dataset in {table.root} has official folds: cross-validate over "
                         "them instead of --k")
    members: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(table.clips):
        members[clip.group].append(i)
    by_class: dict[int, list[str]] = defaultdict(list)
    for group, rows in members.items():
        by_class[table.clips[rows[0]].target].append(group)
    rng = random.Random(seed)
    fold_of: dict[int, int] = {}
    for label in sorted(by_class):
        groups = sorted(by_class[label])
        rng.shuffle(groups)
        sizes = [0] * k
        for group in sorted(groups, key=lambda g: -len(members[g])):
            fold = min(range(k), key=lambda f: (sizes[f], f))
            sizes[fold] += len(members[group])
            fold_of.update({i: fold + 1 for i in members[group]})
    table.clips = [Clip(c.path, fold_of[i], c.target, c.group) for i, c in enumerate(table.clips)]


def list_files(folder: Path, recursive: bool = False) -> tuple[list[Path], list[Path], int]:
    """The audio files under ``folder`` (sorted), the other files, and how many hidden files
    (names starting with ".", macOS ``._*`` among them) were skipped."""
    audio, other, hidden = [], [], 0
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            hidden += path.is_file()
        elif path.is_file():
            (audio if path.suffix.lower() in AUDIO_EXTENSIONS else other).append(path)
    return audio, other, hidden


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of a metadata CSV as dicts, read the way spreadsheets write them: UTF-8 with or
    without a byte-order mark, else Latin-1; comma, semicolon or tab delimited (from the header
    line); spaces around names and values dropped."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    header = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=header.count)
    rows = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in rows]


def check_unique_stems(files: list[Path]) -> dict[str, Path]:
    """Files by name stem; two files with one stem (x.wav beside x.ogg) are an error."""
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise Esc50Error(f"{by_stem[path.stem]} and {path} are one clip in two files: keep "
                             "one")
        by_stem[path.stem] = path
    return by_stem


class AudioCache:
    """Every clip decoded once, resampled and padded/cropped, kept as int16: in memory, or with
    ``config.audio_cache`` set, in a memory-mapped store in that folder that later runs on the
    same files reuse (see :mod:`esc50.core.diskcache`).

    A clip that cannot be used (corrupt, empty, silent, NaN, or shorter than ``min_samples``,
    the featurizer's analysis window) stops the run with its one-line error, or, with
    ``skip_bad=True``, is reported through ``warn`` and listed in ``bad`` (callers leave those
    indices out)."""

    def __init__(self, clips: list[Clip], config: TaskConfig, threads: int | None = None,
                 skip_bad: bool = False, warn: Callable[[str], None] = print,
                 digests: list[str] | None = None, min_samples: int = 1) -> None:
        if config.audio_cache:  # ``digests``: each clip's file sha256, when already known
            digests = digests or [file_sha256(c.path) for c in clips]
            store = DiskStore(Path(config.audio_cache), digests, config.sample_rate,
                              config.length_wav)
        else:
            store = None
        self.location = store.waves_path if store else None
        self.reused = store is not None and store.usable(warn)  # nothing decoded: mapped as stored
        if self.reused:
            self.waves, self.lengths, errors = store.load()
        else:
            self.waves = (store.new_waves() if store else
                          torch.zeros(len(clips), config.length_wav, dtype=torch.int16))
            self.lengths = torch.zeros(len(clips), dtype=torch.long)
            errors = self._decode(clips, config, threads)
            if store is not None:
                store.save(self.lengths, errors)
        for i in (self.lengths < min_samples).nonzero().flatten().tolist():
            errors.setdefault(i, f"{clips[i].path}: {int(self.lengths[i])} samples at "
                                 f"{config.sample_rate} Hz, shorter than one analysis window "
                                 f"of the featurizer ({min_samples} samples)")
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
    cache (``index``: the clip's row in the cache); with ``audio=False`` only ``label`` and
    ``index`` (when features are cached, batches need no waveforms)."""

    def __init__(self, cache: AudioCache, labels: list[int], indices: list[int],
                 audio: bool = True) -> None:
        self.cache, self.indices, self.audio = cache, indices, audio
        self.labels = [labels[i] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, object]:
        i = self.indices[item]
        if not self.audio:
            return {"label": self.labels[item], "index": i}
        length = int(self.cache.lengths[i])
        return {"wav": self.cache.waves[i, :length], "label": self.labels[item], "length": length,
                "index": i}
