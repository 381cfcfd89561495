"""The labelled clips a dataset plugin finds in a folder, checked, and the helpers dataset plugins
use to list a folder and read a metadata table.

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
import random
from collections import defaultdict
from pathlib import Path

import soundfile as sf

from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.plugins.contracts import Clip, ClipTable
from esc50.core.plugins.registry import Registry, load_registry

# What soundfile decodes, by extension; headerless RAW needs parameters no file carries.
AUDIO_EXTENSIONS = ({f".{ext.lower()}" for ext in sf.available_formats()}
                    | {".oga", ".opus", ".aif"}) - {".raw"}


def find_clips(root: Path, config: TaskConfig, registry: Registry | None = None) -> ClipTable:
    """The clips of ``root`` as the run's dataset plugin reads them, checked; with
    ``config.k_folds`` a dataset without folds gets that many grouped, stratified folds.
    ``registry``: the installed plugins unless given."""
    registry = registry or load_registry()
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
