"""Every clip of a dataset decoded once (resampled, padded or cropped, int16), in memory or in an
on-disk store (:mod:`esc50.core.data.diskcache`), and the torch ``Dataset`` over a subset of it."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset

from esc50.core.config import TaskConfig
from esc50.core.data.audio import load_clip, to_int16
from esc50.core.data.diskcache import DiskStore
from esc50.core.errors import Esc50Error
from esc50.core.files.digest import file_sha256
from esc50.core.plugin_api.contracts import Clip


def decoded_bytes(clips: int, config: TaskConfig) -> int:
    """What ``clips`` decoded clips take in memory (int16, none when memory-mapped from
    ``config.audio_cache``)."""
    return 0 if config.audio_cache else clips * config.length_wav * torch.int16.itemsize


class AudioCache:
    """Every clip decoded once, resampled and padded/cropped, kept as int16: in memory, or with
    ``config.audio_cache`` set, in a memory-mapped store in that folder that later runs on the
    same files reuse (see :mod:`esc50.core.data.diskcache`).

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
