"""A CSV manifest: columns ``path`` and ``label``, optional ``fold`` (whole numbers from 1) and
``group`` (clips sharing a group, e.g. takes of one recording, stay on one side of a split).
Paths are relative to the manifest's folder (or absolute; a path through a link or out of the
folder is kept as written); class names are the labels, sorted.
The manifest is ``file`` inside the dataset folder. The default sample rate and clip length are
the options ``sample_rate`` and ``clip_seconds``."""

from __future__ import annotations

import os
from pathlib import Path

from esc50 import (Clip, ClipTable, DatasetReader, Esc50Error, hookimpl, named_as_audio,
                   read_table)

ESC50_PLUGIN_API = 4


class Manifest(DatasetReader):
    """Clips listed in a CSV file (path, label[, fold, group])."""

    name = "csv"

    def __init__(self, file: str = "labels.csv", sample_rate: int = 44_100,
                 clip_seconds: float = 5.0) -> None:
        """Options:
        file: the manifest's name inside the dataset folder
        sample_rate: the default sample rate of a run
        clip_seconds: the default clip length of a run
        """
        if sample_rate <= 0 or clip_seconds <= 0:
            raise Esc50Error("options sample_rate and clip_seconds must be positive")
        self.file, self.sample_rate, self.clip_seconds = file, sample_rate, clip_seconds

    def read(self, root: Path) -> ClipTable:
        manifest = root / self.file
        table = read_table(manifest, f"manifest (option file={self.file!r})")
        missing = {"path", "label"} - set(table[0] if table else ())
        if missing:
            raise Esc50Error(f"{manifest}: the header lacks {', '.join(sorted(missing))} "
                             f"(columns: path, label[, fold, group])")
        rows = [self.row(manifest, number, row) for number, row in enumerate(table, start=2)]
        seen: dict[Path, int] = {}
        for path, _, _, _, number in rows:
            if path in seen:
                raise Esc50Error(f"{manifest}: row {number} lists {path} again (first in row "
                                 f"{seen[path]})")
            seen[path] = number
        with_fold = sum(1 for row in rows if row[2])
        if 0 < with_fold < len(rows):
            raise Esc50Error(f"{manifest}: {with_fold} of {len(rows)} rows give a fold: give every "
                             "row a fold, or none")
        names = sorted({label for _, label, _, _, _ in rows})
        clips = [Clip(path, fold, names.index(label), group)
                 for path, label, fold, group, _ in rows]
        return ClipTable(root, clips, names, self.sample_rate, self.clip_seconds)

    @staticmethod
    def row(manifest: Path, number: int, row: dict[str, str]
            ) -> tuple[Path, str, int, str, int]:
        path_text, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not path_text or not label:
            raise Esc50Error(f"{manifest}: row {number} needs a path and a label")
        path = Path(os.path.normpath(manifest.parent / path_text))  # links kept as named
        if not named_as_audio(path):
            raise Esc50Error(f"{manifest}: row {number}: {path_text} is not an audio file "
                             "soundfile reads")
        fold_text = (row.get("fold") or "").strip()
        try:
            fold = int(fold_text) if fold_text else 0
            if fold_text and fold < 1:
                raise ValueError
        except ValueError:
            raise Esc50Error(f"{manifest}: row {number}: fold {fold_text!r} must be a whole "
                             "number from 1") from None
        group = (row.get("group") or "").strip() or path_text
        return path, label, fold, group, number


@hookimpl
def register_datasets(register):
    register(Manifest)
