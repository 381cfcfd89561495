"""ESC-10: the 400 clips of an ESC-50 folder marked ``esc10`` in ``meta/esc50.csv`` (10 classes,
the official folds), relabelled 0..9 in the order of their ESC-50 targets, with their class
names."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from esc50 import (Clip, ClipTable, DatasetReader, Esc50Error, TaskConfig, check_unique_stems,
                   hookimpl, list_files)
from esc50.plugins.datasets.esc50 import ESC10_LICENCE, read_rows

ESC50_PLUGIN_API = 4


class ESC10(DatasetReader):
    """ESC-10: the esc10 subset of ESC-50, 400 clips, 10 classes, 5 official folds."""

    name = "esc10"
    licence = ESC10_LICENCE

    def __init__(self, config: TaskConfig) -> None:
        self.keyword = config.keyword

    def read(self, root: Path) -> ClipTable:
        meta = root / "meta" / "esc50.csv"
        if not meta.is_file():
            raise Esc50Error(f"esc10 needs the ESC-50 metadata {meta} (its esc10 column)")
        audio_dir = root / "audio" if (root / "audio").is_dir() else root
        audio, _, hidden = list_files(audio_dir)
        files = check_unique_stems([p for p in audio if fnmatch.fnmatch(p.name, self.keyword)])
        rows = [r for r in read_rows(meta, None) if r["esc10"]]
        if not rows:
            raise Esc50Error(f"{meta} marks no clip as esc10")
        targets = sorted({r["target"] for r in rows})  # ESC-50 targets of the 10 classes
        relabel = {target: i for i, target in enumerate(targets)}
        names = {r["target"]: r["category"] for r in rows}
        clips = [Clip(files[r["stem"]], r["fold"], relabel[r["target"]], r["group"])
                 for r in rows if r["stem"] in files]
        # The other ESC-50 clips are left out on purpose: counted, not listed one by one.
        return ClipTable(root, clips, [names[t] for t in targets], 44_100, 5.0, [], hidden)


@hookimpl
def register_datasets(register):
    register(ESC10)
