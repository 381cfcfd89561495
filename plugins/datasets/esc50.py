"""ESC-50 (Piczak 2015): clips named ``{fold}-{clip}-{take}-{target}.<ext>``, either directly in
the folder or in ``audio/`` beside ``meta/esc50.csv`` (the official layout), 44.1 kHz, 5 s.

The CSV, when present, gives folds, targets, class names and the recording each clip was cut
from (``src_file``); files are matched to its rows by name stem, so the official WAV release and
a re-encoded copy (ogg, flac) read the same way. Without the CSV the ``{clip}`` part of a name
identifies the recording. Every CSV row is checked, its file present or not: a repeated file, a
target outside the classes, a category that disagrees with another row of its target or with the
file name are errors naming the row. An audio file the CSV does not list, and any other file, is
reported (``ClipTable.ignored``)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from esc50 import (Clip, ClipTable, DatasetReader, Esc50Error, TaskConfig, check_unique_stems,
                   describe_unused, hookimpl, list_files, read_table)

ESC50_PLUGIN_API = 4

# The licences the ESC-50 release states in its LICENSE file: the dataset as a whole is
# Creative Commons Attribution-NonCommercial 3.0, its ESC-10 subset Attribution 3.0 Unported;
# each clip's freesound.org source and licence are listed there.
ESC50_LICENCE = ("CC BY-NC 3.0 (ESC-50, Karol J. Piczak; clips from freesound.org, each "
                 "credited in the release's LICENSE file): non-commercial use only")
ESC10_LICENCE = ("CC BY 3.0 (the ESC-10 subset of ESC-50, Karol J. Piczak; clips from "
                 "freesound.org, each credited in the release's LICENSE file): attribution")

CLIP_NAME = re.compile(r"^(?P<fold>\d+)-(?P<clip>[^-]+)-(?P<take>[^-]+)-(?P<target>\d+)$")


class ESC50(DatasetReader):
    """ESC-50: 2000 clips, 50 classes, 5 official folds (meta/esc50.csv or file names)."""

    name = "esc50"

    def __init__(self, config: TaskConfig) -> None:
        self.keyword, self.num_classes = config.keyword, config.num_classes

    def read(self, root: Path) -> ClipTable:
        audio_dir = root / "audio" if (root / "audio").is_dir() else root
        audio, other, hidden = list_files(audio_dir)
        files = check_unique_stems([p for p in audio if fnmatch.fnmatch(p.name, self.keyword)])
        meta = root / "meta" / "esc50.csv"
        if meta.is_file():
            rows = read_rows(meta, self.num_classes)
            listed = {r["stem"] for r in rows}
            clips = [self.clip(r, files[r["stem"]]) for r in rows if r["stem"] in files]
            names = category_names(rows)
            unlisted = [f"{p.name} (not in {meta.name})" for s, p in files.items()
                        if s not in listed]
        else:
            clips, names, unlisted = [clip_from_name(p) for p in files.values()], {}, []
        classes = self.num_classes or max(names, default=max((c.target for c in clips),
                                                               default=-1)) + 1
        ignored = unlisted + [describe_unused(p, audio_dir) for p in other]
        # the release's licence where its metadata is read; a folder of clips merely named
        # like ESC-50's may be anyone's
        return ClipTable(root, clips, [names.get(t, str(t)) for t in range(classes)],
                         44_100, 5.0, ignored, hidden,
                         licence=ESC50_LICENCE if meta.is_file() else None)

    @staticmethod
    def clip(row: dict[str, Any], path: Path) -> Clip:
        return Clip(path, row["fold"], row["target"], row["group"])


def clip_from_name(path: Path) -> Clip:
    match = CLIP_NAME.match(path.stem)
    if match is None:
        raise Esc50Error(f"{path}: name does not follow {{fold}}-{{clip}}-{{take}}-{{target}}"
                         ".<ext> (use the folder dataset, --dataset plugins.folder, for other "
                         "names)")
    return Clip(path, int(match["fold"]), int(match["target"]), match["clip"])


def read_rows(meta: Path, num_classes: int | None) -> list[dict[str, Any]]:
    """The checked rows of ``meta/esc50.csv``: stem, fold, target, category, group, esc10."""
    rows: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}  # file stem -> the row that listed it first
    names: dict[int, str] = {}
    table = read_table(meta)
    missing = [c for c in ("filename", "fold", "target") if table and c not in table[0]]
    if missing:
        raise Esc50Error(f"{meta}: the header lacks {', '.join(missing)} (columns found: "
                         f"{', '.join(table[0]) or 'none'})")
    for row_number, row in enumerate(table, start=2):
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
        if target < 0 or (num_classes is not None and target >= num_classes):
            upper = f"0..{num_classes - 1} (num_classes={num_classes})" if num_classes \
                else "0 or more"
            raise Esc50Error(f"{meta}: row {row_number} has target {target}, outside {upper}")
        category = row.get("category") or str(target)
        if names.setdefault(target, category) != category:
            raise Esc50Error(f"{meta}: row {row_number} names target {target} {category!r}, "
                             f"but an earlier row names it {names[target]!r}")
        match = CLIP_NAME.match(stem)
        if match and (int(match["fold"]), int(match["target"])) != (fold, target):
            raise Esc50Error(f"{meta}: row {row_number} says fold {fold}, target {target} but "
                             f"the file name {stem} says fold {match['fold']}, target "
                             f"{match['target']}")
        rows.append({"stem": stem, "fold": fold, "target": target, "category": category,
                     "group": row.get("src_file") or (match["clip"] if match else stem),
                     "esc10": (row.get("esc10") or "").strip().lower() == "true"})
    return rows


def category_names(rows: list[dict[str, Any]]) -> dict[int, str]:
    return {r["target"]: r["category"] for r in rows}


@hookimpl
def register_datasets(register):
    register(ESC50)
