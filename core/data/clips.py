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

import dataclasses
import os
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import soundfile as sf

from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.files.read import why_not_a_file
from esc50.core.files.tree import walk_tree
from esc50.core.plugin_api.contracts import Clip, ClipTable
from esc50.core.plugin_api.registry import Choice, Registry, load_registry

# What soundfile decodes, by extension; headerless RAW needs parameters no file carries.
AUDIO_EXTENSIONS = ({f".{ext.lower()}" for ext in sf.available_formats()}
                    | {".oga", ".opus", ".aif"}) - {".raw"}

# audio that phones and other recorders write and libsndfile does not decode (AAC, WMA, AMR)
UNDECODED_AUDIO = {".m4a", ".aac", ".wma", ".amr", ".3gp"}


def by_extension(names: list[str]) -> dict[str, int]:
    """How many of the files ``names`` have each extension (lower case), by extension."""
    return dict(sorted(Counter(Path(name).suffix.lower() or "(no extension)"
                               for name in names).items()))


def named_as_audio(path: Path) -> bool:
    """Whether ``path`` is named as audio esc50 decodes: by its extension, in any case."""
    return path.suffix.lower() in AUDIO_EXTENSIONS


def split_by_name(entries: list[Path], root: Path) -> tuple[list[Path], list[str]]:
    """The entries of a walk of ``root`` named as audio esc50 decodes (:func:`named_as_audio`),
    in their order, and the regular files among the others as their paths under ``root``,
    sorted: the files left out for their names (:func:`not_audio_note`)."""
    audio = [path for path in entries if named_as_audio(path)]
    others = sorted(path.relative_to(root).as_posix() for path in entries
                    if not named_as_audio(path) and why_not_a_file(path) is None)
    return audio, others


def not_audio_note(folder: Path, names: list[str], left: str, shown: int = 3) -> str:
    """One line on the files under ``folder`` left out for their names (``names``: their paths
    under it; ``left``: what was not done with them, e.g. "analysed"): how many of each
    extension, the first ``shown``, and what to do with audio that esc50 cannot decode."""
    kinds = by_extension(names)
    undecoded = sorted(set(kinds) & UNDECODED_AUDIO)
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return (f"{len(names)} file{'s' if len(names) > 1 else ''} under {folder} not {left}, "
            f"{'their names not those' if len(names) > 1 else 'its name not that'} of audio "
            f"esc50 decodes: {', '.join(f'{kind} {count}' for kind, count in kinds.items())} "
            f"({', '.join(names[:shown])}{more})"
            + (f"; {', '.join(undecoded)} {'is' if len(undecoded) == 1 else 'are'} audio esc50 "
               "cannot decode: convert such files "
               f"first (ffmpeg -i rec{undecoded[0]} rec.flac)" if undecoded else ""))


def find_clips(root: Path, config: TaskConfig, registry: Registry | None = None,
               warn: Callable[[str], None] = print, dataset: Choice | None = None
               ) -> ClipTable:
    """The clips of ``root`` as the run's dataset plugin reads them, checked: every clip's path
    made absolute and found to be a regular file (a missing one, a folder, a FIFO, a broken link
    stops the run naming the plugin and the file, or with ``skip_bad_files`` is left out and
    counted in a warning through ``warn``), labels inside the class names, two classes at
    least, each name once. With ``config.k_folds`` a dataset without folds gets that many
    grouped, stratified folds; the clips of ``config.ignore_folds`` are left out of the table.
    ``dataset``: the run's dataset plugin as it was chosen (a run chooses each plugin once),
    else chosen here from ``registry`` (the installed plugins unless given)."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise Esc50Error(f"dataset folder {root} does not exist")
    choice = dataset or (registry or load_registry()).choose("dataset", config.dataset, config)
    reader = choice.build(config)
    table = reader.read(root)
    table.root = root
    table.licence = table.licence or getattr(reader, "licence", None)
    table.clips = [dataclasses.replace(c, path=Path(os.path.abspath(c.path))) for c in table.clips]
    bad = [(clip, why) for clip in table.clips if (why := why_not_a_file(clip.path))]
    if bad and not config.skip_bad_files:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise Esc50Error(f"{choice.label} lists {bad[0][0].path}, which {bad[0][1]}{more}; "
                         "--skip-bad-files leaves such clips out with a warning")
    if bad:
        table.clips = [c for c in table.clips if not why_not_a_file(c.path)]
        shown = "; ".join(f"{c.path} {why}" for c, why in bad[:3])
        warn(f"warning: left out {len(bad)} clip(s) that {choice.label} lists but are not "
             f"readable files: {shown}{' ...' if len(bad) > 3 else ''}")
    if not table.clips:
        raise Esc50Error(f"dataset {config.dataset} found no clips in {root}")
    classes = len(table.class_names)
    twice = sorted({n for n in table.class_names if table.class_names.count(n) > 1})
    if twice:
        raise Esc50Error(f"dataset {config.dataset} in {root} gives the class name(s) "
                         f"{', '.join(map(repr, twice[:3]))} to more than one label: each class "
                         "needs a name of its own")
    for clip in table.clips:
        if not 0 <= clip.target < classes:
            raise Esc50Error(f"{clip.path}: label {clip.target} is outside 0..{classes - 1}")
    present = sorted({c.target for c in table.clips})
    if len(present) < 2:
        raise Esc50Error(f"dataset {config.dataset} in {root} has clips of one class only "
                         f"({table.class_names[present[0]]!r}): a classifier needs two classes "
                         "at least")
    if config.num_classes is not None and config.num_classes != classes:
        raise Esc50Error(f"config num_classes={config.num_classes}, but dataset "
                         f"{config.dataset} in {root} has {classes} classes (leave num_classes "
                         "unset: the dataset decides it)")
    for names in alike_names(table.class_names):
        warn(f"warning: dataset {config.dataset} in {root} has classes "
             f"{' and '.join(map(repr, names))}, which differ only in case or surrounding "
             "spaces: if they are one class, give them one label")
    if config.k_folds:
        assign_folds(table, config.k_folds, config.seed)
    if config.ignore_folds and table.has_folds:  # never decoded, never read
        table.clips = [c for c in table.clips if c.fold not in config.ignore_folds]
    return table


def alike_names(names: list[str]) -> list[list[str]]:
    """Groups of class names that are the same but for case and surrounding spaces."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.strip().casefold(), []).append(name)
    return [group for group in groups.values() if len(group) > 1]


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
    """The audio files in ``folder``, or under it (``recursive``: walked as :func:`walk_tree`
    walks a tree, links followed, a folder that cannot be listed an error, since its clips
    would be missing without a word), sorted regular files with an audio extension; the other
    entries a reader should report as not used (other files, and what is no regular file: a
    broken link, a FIFO, and in ``folder`` alone a folder named like an audio file, which a
    recursive walk enters); and how many hidden files (names starting with ".", macOS ``._*``
    among them) were skipped."""
    if recursive:
        tree = walk_tree(folder)
        if tree.unlisted:
            raise Esc50Error(f"{tree.refusals()[0]}: the clips in it would be missing; make it "
                             f"readable, or move it out of {folder}")
        entries, hidden = tree.entries, tree.hidden
    else:
        listed = sorted(folder.iterdir())
        entries = [path for path in listed if not path.name.startswith(".")]
        hidden = sum(path.is_file() for path in listed if path.name.startswith("."))
    audio, other = [], []
    for path in entries:
        if why_not_a_file(path) is None:
            (audio if named_as_audio(path) else other).append(path)
        elif not path.is_dir() or named_as_audio(path):
            other.append(path)
    return audio, other, hidden


def describe_unused(path: Path, root: Path, why: str = "not audio") -> str:
    """How a reader lists an entry of :func:`list_files` among the files it does not use: its
    name under ``root`` and why (``why`` for a regular file, else what it is instead)."""
    return f"{path.relative_to(root).as_posix()} ({why_not_a_file(path) or why})"


def check_unique_stems(files: list[Path]) -> dict[str, Path]:
    """Files by name stem; two files with one stem (x.wav beside x.ogg) are an error."""
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise Esc50Error(f"{by_stem[path.stem]} and {path} are one clip in two files: keep "
                             "one")
        by_stem[path.stem] = path
    return by_stem
