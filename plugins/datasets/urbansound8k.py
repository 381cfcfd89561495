"""UrbanSound8K (Salamon, Jacoby and Bello 2014), in its official layout:
``metadata/UrbanSound8K.csv`` (slice_file_name, fsID, start, end, salience, fold, classID,
class) and ``audio/fold1`` .. ``audio/fold10``. 8732 slices of at most 4 s, 10 classes, 10
official folds; slices of one Freesound recording (``fsID``) share a group. The files come at
many rates; the default here is 22.05 kHz and 4 s, as most of the literature uses."""

from __future__ import annotations

from pathlib import Path

from esc50 import (Clip, ClipTable, DatasetReader, Esc50Error, describe_unused,
                   hookimpl, list_files, read_table)

ESC50_PLUGIN_API = 4


class UrbanSound8K(DatasetReader):
    """UrbanSound8K: 8732 slices, 10 classes, 10 official folds."""

    name = "urbansound8k"
    licence = ("CC BY-NC 3.0 (Salamon, Jacoby and Bello, UrbanSound8K; clips from "
               "freesound.org): non-commercial use only, with attribution")

    def read(self, root: Path) -> ClipTable:
        meta = root / "metadata" / "UrbanSound8K.csv"
        if not meta.is_file():
            raise Esc50Error(f"UrbanSound8K metadata {meta} does not exist")
        clips, names, listed, missing = [], {}, set(), []
        for number, row in enumerate(read_table(meta), start=2):
            try:
                name, fold = row["slice_file_name"], int(row["fold"])
                target, group = int(row["classID"]), row["fsID"]
            except (KeyError, ValueError):
                raise Esc50Error(f"{meta}: row {number} lacks a valid slice_file_name, fold, "
                                 "classID or fsID") from None
            category = row.get("class") or str(target)
            if names.setdefault(target, category) != category:
                raise Esc50Error(f"{meta}: row {number} names classID {target} {category!r}, "
                                 f"but an earlier row names it {names[target]!r}")
            path = root / "audio" / f"fold{fold}" / name
            listed.add(path)
            if path.is_file():
                clips.append(Clip(path, fold, target, group))
            else:  # a partial download: counted in the run's warning of files not used
                missing.append(f"{path.relative_to(root).as_posix()} (listed in the metadata, "
                               "missing)")
        if sorted(names) != list(range(len(names))):
            raise Esc50Error(f"{meta}: classID values {sorted(names)} are not 0..{len(names) - 1}")
        audio, other, hidden = (list_files(root / "audio", recursive=True)
                                if (root / "audio").is_dir() else ([], [], 0))
        ignored = missing + [f"{p.relative_to(root)} (not in the metadata)" for p in audio
                             if p not in listed] + [describe_unused(p, root) for p in other]
        return ClipTable(root, clips, [names[t] for t in range(len(names))], 22_050, 4.0,
                         ignored, hidden)


@hookimpl
def register_datasets(register):
    register(UrbanSound8K)
