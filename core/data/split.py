"""Which clips a run trains on and which it validates on, recorded so that every later command
scores the same clips.

- ``split="fold"``: the official folds, ``val_fold`` held out.
- ``split="random"``: a seeded random split, grouped and stratified: the clips of one recording
  (``Clip.group``) stay on one side, and each class puts about ``1 - train_ratio`` of its clips
  into validation.
- ``split="all"``: every clip trains and none is held out: a final model (such as the one esc50
  ships), which has no accuracy of its own; a cross-validation of the same settings estimates it.

A run stores its split (the clip names of each side and the sha256 of every clip the dataset held)
in ``split.json`` and in its checkpoints. ``evaluate`` and ``--resume`` use the stored names and
refuse when the data changed since, unless told to accept it (then they say what changed).
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from esc50.core.config import TaskConfig
from esc50.core.plugin_api.contracts import ClipTable
from esc50.core.files.digest import file_sha256
from esc50.core.errors import Esc50Error

ALLOW_FLAG = "--allow-changed-data"
ALL_CLIPS = ("every clip trains, none is held out (split=all): no accuracy of its own; a "
             "cross-validation of the same settings estimates it")


@dataclass
class Split:
    """Clip names (relative to the dataset folder) of each side, how they were chosen, and the
    sha256 of every clip of the dataset when the split was made."""

    train: list[str]
    val: list[str]
    description: str
    digests: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Split:
        return cls(**values)

    @property
    def holds_out(self) -> bool:
        """Whether any clip is held out for validation (not with ``split="all"``)."""
        return bool(self.val)

    def indices(self, table: ClipTable) -> tuple[list[int], list[int]]:
        """Rows of ``table`` on each side (names no longer in the table are left out)."""
        row = {name: i for i, name in enumerate(table.names())}
        return ([row[n] for n in self.train if n in row], [row[n] for n in self.val if n in row])

    def changes(self, digests: dict[str, str]) -> str | None:
        """What differs between the recorded dataset and ``digests`` (None: nothing)."""
        added = sorted(set(digests) - set(self.digests))
        removed = sorted(set(self.digests) - set(digests))
        modified = sorted(n for n in digests if n in self.digests and digests[n] != self.digests[n])
        parts = [f"{len(names)} clip(s) {word} ({', '.join(names[:2])}"
                 f"{', ...' if len(names) > 2 else ''})"
                 for word, names in (("added", added), ("removed", removed),
                                     ("modified", modified)) if names]
        return "; ".join(parts) or None

    def check_data(self, table: ClipTable, digests: dict[str, str], allow_changed: bool,
                   warn: Callable[[str], None]) -> None:
        """Refuse (or, with ``allow_changed``, warn) when the dataset is not the recorded one."""
        change = self.changes(digests)
        if change is None:
            return
        what = f"the data in {table.root} changed since the run was trained: {change}"
        if not allow_changed:
            raise Esc50Error(f"{what}; pass {ALLOW_FLAG} to use the run's recorded split of the "
                             "clips still there")
        warn(f"warning: {what}; using the run's recorded split of the clips still there")


def dataset_digests(table: ClipTable) -> dict[str, str]:
    """The sha256 of every clip file, by clip name. The same audio twice is a leak waiting to
    happen: identical files under two labels are refused, naming both; identical files under
    one label are put in one recording group (``table`` is changed in place), so that no random
    split separates them (fold splits leave them out of training: :func:`make_split`)."""
    names = table.names()
    digests = {name: file_sha256(clip.path) for name, clip in zip(names, table.clips)}
    by_digest: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        by_digest[digests[name]].append(i)
    parent = {c.group: c.group for c in table.clips}

    def root(group: str) -> str:
        while parent[group] != group:
            group = parent[group]
        return group

    for digest, rows in by_digest.items():
        first = table.clips[rows[0]]
        for i in rows[1:]:
            clip = table.clips[i]
            if clip.target != first.target:
                raise Esc50Error(
                    f"{first.path} and {clip.path} hold the same audio (sha256 {digest[:12]}) "
                    f"under two labels ({table.class_names[first.target]!r}, "
                    f"{table.class_names[clip.target]!r}): a clip has one label; remove one")
            parent[root(clip.group)] = root(first.group)
    table.clips = [dataclasses.replace(c, group=root(c.group)) for c in table.clips]
    return digests


def make_split(table: ClipTable, config: TaskConfig, digests: dict[str, str]) -> Split:
    """The split ``config`` asks for (see the module docstring). Clips of ``ignore_folds`` are
    on neither side."""
    split = config.split if config.split != "auto" else ("fold" if table.has_folds else "random")
    ignored = set(config.ignore_folds)
    if ignored and not table.has_folds:
        raise Esc50Error(f"ignore_folds={sorted(ignored)}: the dataset in {table.root} has no "
                         "folds (give it some with esc50 cv --k K, or leave ignore_folds empty)")
    used = [i for i, c in enumerate(table.clips) if c.fold not in ignored]
    left_out = f", folds {', '.join(map(str, sorted(ignored)))} left out" if ignored else ""
    if split == "all":
        return Split([table.names()[i] for i in used], [], f"{ALL_CLIPS}{left_out}", digests)
    if split == "random":
        train, val, note = grouped_random_split([table.clips[i].group for i in used],
                                                [table.clips[i].target for i in used],
                                                config.train_ratio, config.seed)
        train, val = [used[i] for i in train], [used[i] for i in val]
        description = (f"grouped random split (clips of one recording on one side, stratified by "
                       f"class), train_ratio={config.train_ratio}, seed={config.seed}{left_out}"
                       f"{note}")
        if not train or not val:
            raise Esc50Error(f"no class of the {len(used)} clips in {table.root} has two "
                             "recordings, so none can give one to validation without leaving "
                             "training without it: add recordings, or give the dataset folds")
    else:
        val = [i for i in used if table.clips[i].fold == config.val_fold]
        train = [i for i in used if table.clips[i].fold != config.val_fold]
        names = table.names()
        seen = {digests[names[i]] for i in val if names[i] in digests}
        copies = [i for i in train  # the same audio in two folds
                  if names[i] in digests and digests[names[i]] in seen]
        train = [i for i in train if i not in set(copies)]
        description = f"validation fold {config.val_fold}{left_out}" + (
            f"; {len(copies)} training clip(s) left out: the same audio as a validation clip"
            if copies else "")
        if not val or not train:
            present = ", ".join(map(str, sorted(set(table.folds))))
            which = (f"fold {config.val_fold} has no clips" if not val
                     else "no training folds are left")
            raise Esc50Error(f"{which} in {table.root} (folds present: {present}); pick "
                             "--val-fold from those or use --split random")
    names = table.names()
    return Split([names[i] for i in train], [names[i] for i in val], description, digests)


def grouped_random_split(groups: list[str], labels: list[int], train_ratio: float, seed: int
                         ) -> tuple[list[int], list[int], str]:
    """Train and validation indices, and what was done to reach the share. Recordings
    (``groups``) are shuffled per class (a recording belongs to the class of its first clip) and
    each is moved to validation when that brings the class closer to ``(1 - train_ratio) *
    clips`` there; a class keeps at least one recording in training. Where classes are too small
    for that to add up (a class of 4 clips at train_ratio 0.9 wants 0.4), the classes short of
    their share the most give one more recording each while that brings the whole validation
    side closer to ``(1 - train_ratio)`` of all clips, and at least one recording."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    by_class: dict[int, list[str]] = defaultdict(list)
    for group, rows in members.items():
        by_class[labels[rows[0]]].append(group)
    rng = random.Random(seed)
    order: dict[int, list[str]] = {}  # each class's recordings, in the order they may move
    taken: dict[int, int] = {}  # validation clips per class
    wanted: dict[int, float] = {}
    val: list[int] = []
    for label in sorted(by_class):
        class_groups = sorted(by_class[label])
        rng.shuffle(class_groups)
        wanted[label] = (1 - train_ratio) * sum(len(members[g]) for g in class_groups)
        taken[label] = 0
        order[label] = class_groups[:-1]  # the last recording always stays in training
        for group in list(order[label]):
            if abs(taken[label] + len(members[group]) - wanted[label]) < \
                    abs(taken[label] - wanted[label]):
                val += members[group]
                taken[label] += len(members[group])
                order[label].remove(group)
    total_wanted, moved = (1 - train_ratio) * len(groups), 0
    while True:  # classes too small to reach their share on their own
        movable = [c for c in order if order[c]]
        if not movable:
            break
        label = max(movable, key=lambda c: (wanted[c] - taken[c], -c))
        group = order[label][0]
        if val and abs(len(val) + len(members[group]) - total_wanted) >= \
                abs(len(val) - total_wanted):
            break
        order[label].pop(0)
        val += members[group]
        taken[label] += len(members[group])
        moved += 1
    note = (f"; {moved} recording(s) of classes too small for their own share moved to "
            f"validation so that it holds {len(val)} of {len(groups)} clips" if moved else "")
    held_out = set(val)
    return [i for i in range(len(groups)) if i not in held_out], sorted(val), note
