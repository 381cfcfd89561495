"""The data side of training: the decoded clips of a split, their features, the augmentation
stages and the normalization, batch by batch on the training device.

A training batch meets, in order: the ``wave`` augmentations, the featurizer (for a
:class:`PowerFeaturizer`: its power spectrogram, the ``power`` augmentations, its compression),
the normalization, the ``features`` augmentations, then the ``batch`` augmentations (mixup), which
turn the labels into probabilities. Without waveform augmentation every epoch would featurize the
same audio again, so features are computed once for all clips (the power spectrogram when power
augmentations run, else the finished features) and batches are gathered from that cache.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from esc50.core.audio import to_float
from esc50.core.augment import AugmentationPipeline
from esc50.core.classifier import Classifier
from esc50.core.collate import collate
from esc50.core.config import TaskConfig
from esc50.core.contracts import PowerFeaturizer, Randomness
from esc50.core.dataset import AudioCache, ClipDataset, ClipTable
from esc50.core.distributed import Distributed
from esc50.core.errors import Esc50Error
from esc50.core.normalize import FeatureNormalizer
from esc50.core.sampler import ClassBalancedSampler
from esc50.core.split import Split

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # features, frame lengths, targets


def available_memory() -> int | None:
    """Bytes of memory the system can give (Linux's MemAvailable), None where unknown."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(config: TaskConfig, clips: int, feature_shape: tuple[int, int, int]) -> None:
    """Refuse, before decoding anything, a run whose decoded audio (int16, unless it goes to a
    memory-mapped audio_cache) and cached features (float32) cannot fit in memory."""
    available = available_memory()
    if available is None:
        return
    audio = 0 if config.audio_cache else clips * config.length_wav * 2
    features = clips * 4 * feature_shape[0] * feature_shape[1] * feature_shape[2] \
        if config.cache_features else 0
    if audio + features > 0.9 * available:
        raise Esc50Error(f"{clips} clips of length_wav={config.length_wav} need about "
                         f"{(audio + features) / 2**30:.1f} GiB in memory (decoded audio "
                         f"{audio / 2**30:.1f}, features {features / 2**30:.1f}) but "
                         f"{available / 2**30:.1f} GiB is available: lower length_wav or "
                         "sample_rate, or set audio_cache=DIR and cache_features=false")


def prepared_ahead(batches: Iterator[Batch], device: torch.device) -> Iterator[Batch]:
    """``batches``, each prepared on a side CUDA stream one step ahead: while the caller's step
    runs on the current stream, the next batch's augmentation and featurization (memory-bound
    work) run beside it on the side stream. The draws stay in the same order, so the batches
    are the same as prepared one after the other."""
    main, side = torch.cuda.current_stream(device), torch.cuda.Stream(device)
    side.wait_stream(main)  # what the main stream wrote before (normalizer, audio) is ready

    def next_on_side() -> Batch | None:
        with torch.cuda.stream(side):
            return next(batches, None)

    upcoming = next_on_side()
    while upcoming is not None:
        main.wait_stream(side)  # this batch is ready before the step that uses it
        for tensor in upcoming:
            tensor.record_stream(main)  # not reused by the side stream while the step runs
        current, upcoming = upcoming, next_on_side()  # queued beside the caller's step
        yield current


class SetupMemo:
    """Decoded audio and featurized clips kept between the runs of one experiment in one
    process (the folds of ``esc50 cv``, which share every setting but the held-out fold): a run
    over the same files (the same sha256 digests) reuses them instead of decoding and
    featurizing again. Holding one is the caller's promise that its runs share the settings
    decoding and featurizing read."""

    def __init__(self) -> None:
        self.digests: list[str] | None = None
        self.audio: AudioCache | None = None
        self.features: tuple[torch.Tensor, torch.Tensor] | None = None  # uncompressed, frames

    def holds(self, digests: list[str]) -> bool:
        return self.audio is not None and self.digests == digests


class FeatureSource:
    """Training and validation batches ``(features, frame_lengths, targets)`` of a split.

    It decodes the clips once, fits the classifier's normalizer on the training clips (without
    augmentation) and owns the loaders: a class-balanced sampler (sharded per process under
    torchrun) for training, the validation clips in order (this process's share) for
    validation. With a :class:`SetupMemo`, decoded audio and features of an earlier run over
    the same files are reused."""

    def __init__(self, config: TaskConfig, classifier: Classifier, augs: AugmentationPipeline,
                 table: ClipTable, split: Split, digests: list[str], device: torch.device,
                 dist: Distributed, log: Callable[[str], None],
                 memo: SetupMemo | None = None) -> None:
        self.config, self.classifier, self.augs, self.device = config, classifier, augs, device
        started = time.perf_counter()
        reused = memo is not None and memo.holds(digests)
        if reused:
            cache = memo.audio
        else:
            check_memory(config, len(table.clips),
                         classifier.featurizer.output_shape(config.length_wav))
            cache = AudioCache(table.clips, config, skip_bad=config.skip_bad_files, warn=log,
                               digests=digests,
                               min_samples=classifier.featurizer.min_samples)
            if memo is not None:
                memo.digests, memo.audio, memo.features = digests, cache, None
        train_idx, val_idx = ([i for i in side if i not in cache.bad]
                              for side in split.indices(table))
        if not train_idx or not val_idx:
            raise Esc50Error(f"every {'training' if not train_idx else 'validation'} clip in "
                             f"{table.root} was skipped as bad")
        where = f"in {cache.location}" if cache.location else "in memory"
        how = "reused" if reused else "mapped" if cache.reused else "decoded"
        log(f"{how} {len(table.clips)} clips from "
            f"{table.root} in {time.perf_counter() - started:.1f} s "
            f"({cache.nbytes() / 2**20:.0f} MiB {where}); "
            f"{len(train_idx)} train / {len(val_idx)} validation ({split.description})")
        # A power featurizer's power spectrogram is what gets cached, so that power-stage
        # augmentations can run between it and the compression.
        self.staged = isinstance(classifier.featurizer, PowerFeaturizer)
        self.cache = (self._cached_features(cache, memo) if config.cache_features
                      and not augs.by_stage["wave"] else None)
        # Waveform batches are gathered where the model trains (on a GPU: not copied and pinned
        # on the host every step).
        self.device_audio = self._on_device(cache) if self.cache is None else None
        audio = self.cache is None and self.device_audio is None  # else loaders carry indices
        self.train_audio = ClipDataset(cache, table.labels, train_idx)  # for the set-up pass
        self.train_set = ClipDataset(cache, table.labels, train_idx, audio)
        self.val_set = ClipDataset(cache, table.labels, val_idx, audio)
        self.cache_finished = False  # the cache holds uncompressed features until below
        if config.normalize:  # statistics of the training clips only, without augmentation
            classifier.normalizer = FeatureNormalizer.fit(self._training_features())
        if self.cache is not None and not augs.by_stage["power"]:
            # Nothing runs between the cache and the model: cache the finished features.
            self.cache = self._finish(*self.cache, training=False)
            self.cache_finished = True

        self.sampler_generator = torch.Generator().manual_seed(config.seed)
        batch_size = dist.per_process_batch(config.batch_size)
        pin = device.type == "cuda"
        # A last batch of one clip would break batch normalization in training: leave it out.
        self.train_loader = DataLoader(
            self.train_set, batch_size=batch_size, collate_fn=collate,
            drop_last=len(train_idx) // dist.world_size % batch_size == 1,
            sampler=ClassBalancedSampler(self.train_set.labels, self.sampler_generator,
                                         dist.world_size, dist.rank),
            num_workers=config.num_workers, pin_memory=pin)
        val_shard = ClipDataset(cache, table.labels, val_idx[dist.rank::dist.world_size], audio)
        self.val_loader = DataLoader(val_shard, batch_size=batch_size, collate_fn=collate,
                                     num_workers=config.num_workers, pin_memory=pin)

    def loader(self, training: bool) -> DataLoader:
        return self.train_loader if training else self.val_loader

    def batches(self, training: bool, generator: torch.Generator | Randomness,
                ahead: bool = True) -> Iterator[Batch]:
        """One epoch of batches: augmented, with label probabilities [B, classes], in training;
        plain, with class indices [B], in validation. ``generator`` draws every augmentation.
        On a GPU (and ``ahead``) each batch is prepared one step ahead on a second stream."""
        batches = (self._prepare(batch, training, generator) for batch in self.loader(training))
        if self.device.type == "cuda" and ahead:
            return prepared_ahead(batches, self.device)
        return batches

    @torch.no_grad()
    def _prepare(self, batch: dict[str, torch.Tensor], training: bool,
                 generator: torch.Generator | Randomness) -> Batch:
        features, frames = self._features(batch, training, generator)
        targets = batch["label"].to(self.device, non_blocking=True)
        if training:
            features, frames = self.augs.transform("features", features, frames, generator)
            targets = nn.functional.one_hot(targets, self.config.num_classes).float()
            features, targets = self.augs.mix(features, targets, generator)
        return self.classifier.model_input(features), frames, targets

    @torch.no_grad()
    def _features(self, batch: dict[str, torch.Tensor], training: bool,
                  generator: torch.Generator | Randomness | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized features and frame lengths of a batch, from the cache or the audio; in
        training after the wave and power augmentations."""
        if self.cache is not None:
            index = batch["index"].to(self.device, non_blocking=True)  # pinned on a GPU
            features, frames = self.cache[0][index], self.cache[1][index]
        else:
            wav, samples = self._waves(batch)
            if training:
                wav, samples = self.augs.transform("wave", wav, samples, generator)
            features = self._uncompressed(wav)
            frames = self.classifier.featurizer.frame_lengths(samples)
        if not self.cache_finished:
            features, frames = self._finish(features, frames, training, generator)
        return features, frames

    def _waves(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's float waveforms [B, T] and valid lengths [B] on the training device."""
        if self.device_audio is not None:
            index = batch["index"].to(self.device, non_blocking=True)
            waves, lengths = self.device_audio
            return to_float(waves[index]), lengths[index]
        return (to_float(batch["wav"].to(self.device, non_blocking=True)),  # pinned on a GPU
                batch["length"].to(self.device, non_blocking=True))

    def _on_device(self, cache: AudioCache) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The decoded clips (int16) and their lengths on the training device: on a GPU copied
        once, when they take at most a quarter of its free memory, else None (batches are then
        copied from the host)."""
        if self.device.type != "cuda":
            return cache.waves, cache.lengths
        free, _ = torch.cuda.mem_get_info(self.device)
        if cache.nbytes() > free // 4:
            return None
        return cache.waves.to(self.device), cache.lengths.to(self.device)

    def _uncompressed(self, wav: torch.Tensor) -> torch.Tensor:
        """What the feature cache holds: a power featurizer's power spectrogram, else features."""
        featurizer = self.classifier.featurizer
        return featurizer.power(wav) if self.staged else featurizer(wav)

    def _finish(self, features: torch.Tensor, frames: torch.Tensor, training: bool,
                generator: torch.Generator | Randomness | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncompressed features to normalized ones, with their frame lengths: the power
        augmentations (in training), the featurizer's compression, the normalization."""
        if self.staged:
            if training:
                features, frames = self.augs.transform("power", features, frames, generator)
            features = self.classifier.featurizer.compress(features)
        if self.classifier.normalizer is not None:
            features = self.classifier.normalizer(features)
        return features, frames

    def _cached_features(self, cache: AudioCache, memo: SetupMemo | None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncompressed features of every clip: the memo's, else computed (and memoized)."""
        if memo is not None and memo.features is not None:
            return memo.features
        features = self._featurize(cache)
        if memo is not None:
            memo.features = features
        return features

    @torch.no_grad()
    def _featurize(self, cache: AudioCache) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncompressed features and frame lengths of every cached clip (padded to length_wav)."""
        features, frames = [], []
        step = self.config.batch_size
        for start in range(0, cache.waves.shape[0], step):
            wav = to_float(cache.waves[start:start + step].to(self.device))
            features.append(self._uncompressed(wav))
            frames.append(self.classifier.featurizer.frame_lengths(
                cache.lengths[start:start + step].to(self.device)))
        return torch.cat(features), torch.cat(frames)

    def _training_features(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(features, frame lengths) of the training clips, unaugmented (and, before the
        normalizer is fitted, unnormalized)."""
        for batch in DataLoader(self.train_set, self.config.batch_size, collate_fn=collate):
            yield self._features(batch, training=False)
