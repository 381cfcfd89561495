"""The one walk of a folder tree that every reader of a user's folders shares (a dataset's
clips, a noise folder, the files ``predict`` and ``analyze`` score): what links reach is
listed, each folder and file once, and a folder the system refuses to list is named, never
left out without a word."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from esc50.core.errors import Esc50Error, one_line


@dataclass(frozen=True)
class FolderTree:
    """What a folder tree holds: ``entries``, every entry that is no folder (files, FIFOs,
    broken links, ...), sorted; ``hidden``, how many such entries were left out for a name
    starting with "." (macOS ``._*`` files among them); ``unlisted``, each folder in the tree
    that could not be listed (no permission, a failing disk), with the system's reason."""

    entries: list[Path]
    hidden: int
    unlisted: dict[Path, str]

    def refusals(self) -> list[str]:
        """A line for each folder that could not be listed, naming it and the reason."""
        return [refusal(folder, reason) for folder, reason in self.unlisted.items()]


def refusal(folder: Path, reason: str) -> str:
    """The line naming a folder the system refuses to list, and its reason."""
    return one_line(f"{folder}: cannot list the folder ({reason})")


def walk_tree(root: Path, skip: Iterable[Path] = ()) -> FolderTree:
    """The tree under ``root``. Links to folders are followed, and a folder or file that links
    reach more than once (a link back up the tree, a second name for a folder or file) is
    listed once, by the first path that reaches it (a folder's files first, then its folders,
    each in the order of their names). Hidden folders, and the folders ``skip`` names, are
    not entered. ``root`` that cannot be listed is an error."""
    skipped = {os.path.realpath(folder) for folder in skip}
    refusals: list[OSError] = []
    seen: set[str] = set()  # the real paths of the folders and entries listed
    entries, hidden = [], 0
    for folder, names, files in os.walk(root, followlinks=True, onerror=refusals.append):
        here, real_folder = Path(folder), os.path.realpath(folder)
        if real_folder in seen:  # reached again through a link
            names[:] = []
            continue
        seen.add(real_folder)
        names[:] = sorted(n for n in names if not n.startswith(".")
                          and os.path.realpath(here / n) not in skipped)
        for name in sorted(files):
            real = os.path.realpath(here / name)
            if name.startswith("."):
                hidden += 1
            elif real not in seen:
                seen.add(real)
                entries.append(here / name)
    unlisted = {Path(error.filename or root): error.strerror or str(error)
                for error in refusals}
    if Path(root) in unlisted:
        raise Esc50Error(refusal(Path(root), unlisted[Path(root)]))
    return FolderTree(sorted(entries), hidden, unlisted)
