"""Your own recordings: one sub-folder per class (class names are the folder names, sorted),
files of any format soundfile reads, nested folders allowed. No official folds: train with the
grouped, stratified random split, or cross-validate with ``esc50 cv --k 5``.

Which files are takes of one recording (and must stay on one side of a split) is the ``groups``
rule: ``file`` (each file its own recording), ``folder`` (files in one folder below the class
folder), or ``prefix`` (files whose names agree up to the first ``separator``: ``dog1_a.wav`` and
``dog1_b.wav`` with ``_``). The default sample rate is the most common rate of the files, the
clip length the longest file's, at most ``max_seconds`` (longer files are cropped in training;
``predict`` scores any length in windows)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from esc50 import (Clip, ClipTable, DatasetReader, Esc50Error, describe_unused,
                   hookimpl, list_files)
from esc50.core.data.audio import opened_audio

ESC50_PLUGIN_API = 4

GROUP_RULES = ("file", "folder", "prefix")


class Folder(DatasetReader):
    """A folder per class of audio files in any format (your own recordings)."""

    name = "folder"

    def __init__(self, groups: str = "file", separator: str = "_",
                 min_clips_per_class: int = 1, max_seconds: float = 10.0) -> None:
        """Options:
        groups: which files are takes of one recording: file, folder or prefix
        separator: what ends the prefix of groups=prefix
        min_clips_per_class: classes with fewer files are left out
        max_seconds: the longest default clip length
        """
        if groups not in GROUP_RULES:
            raise Esc50Error(f"option groups={groups!r} must be one of {', '.join(GROUP_RULES)}")
        if min_clips_per_class < 1 or max_seconds <= 0:
            raise Esc50Error("options min_clips_per_class and max_seconds must be positive")
        self.groups, self.separator = groups, separator
        self.min_clips, self.max_seconds = min_clips_per_class, max_seconds

    def read(self, root: Path) -> ClipTable:
        loose, other, hidden = list_files(root)
        ignored = [describe_unused(p, root, "not in a class folder") for p in loose + other]
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        by_class: dict[str, list[Path]] = {}
        for folder in class_dirs:
            audio, not_audio, hidden_here = list_files(folder, recursive=True)
            hidden += hidden_here
            ignored += [describe_unused(p, root) for p in not_audio]
            if len(audio) < self.min_clips:
                ignored += [f"{folder.name}/ ({len(audio)} audio files, fewer than "
                            f"min_clips_per_class={self.min_clips}: class left out)"]
                continue
            by_class[folder.name] = audio
        if not by_class:
            raise Esc50Error(f"{root} holds no class folders with audio files (expected "
                             f"{root}/<class name>/<clip>.wav, ...)")
        names = sorted(by_class)
        clips = [Clip(path, 0, target, self.group(path, root))
                 for target, name in enumerate(names) for path in by_class[name]]
        rate, seconds = self.defaults([c.path for c in clips])
        return ClipTable(root, clips, names, rate, seconds, ignored, hidden)

    def group(self, path: Path, root: Path) -> str:
        if self.groups == "folder":
            return path.parent.relative_to(root).as_posix()
        if self.groups == "prefix":
            return f"{path.parent.relative_to(root).as_posix()}/" \
                   f"{path.stem.split(self.separator, 1)[0]}"
        return path.relative_to(root).as_posix()

    def defaults(self, paths: list[Path]) -> tuple[int, float]:
        """The most common sample rate and the longest duration (at most max_seconds); files
        whose header cannot be read are left to the decoder to report."""
        rates, longest = Counter(), 0.0
        for path in paths:
            try:  # read as every clip is (a WAV whose header was never finished, too)
                with opened_audio(path) as audio:
                    file_rate, frames = audio.samplerate, audio.frames
            except Esc50Error:
                continue
            rates[file_rate] += 1
            longest = max(longest, frames / max(file_rate, 1))
        rate = rates.most_common(1)[0][0] if rates else 44_100
        return rate, min(longest, self.max_seconds) or self.max_seconds


@hookimpl
def register_datasets(register):
    register(Folder)
