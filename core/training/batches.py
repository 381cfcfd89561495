"""The batches of a split, on the training device, through the run's stages
(:mod:`esc50.core.training.stages`).

Without waveform augmentation every epoch would featurize the same audio again, so features are
computed once for all clips (the power spectrogram when power augmentations run, else the
finished, normalized features) and batches are gathered from that cache.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from esc50.core.config import TaskConfig
from esc50.core.data.audio import to_float
from esc50.core.data.audiocache import AudioCache, ClipDataset
from esc50.core.data.clips import find_clips
from esc50.core.data.collate import collate
from esc50.core.data.location import resolve_data_dir
from esc50.core.data.sampler import ClassBalancedSampler
from esc50.core.data.split import Split, dataset_digests
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.contracts import ClipTable, Randomness
from esc50.core.plugin_api.registry import Choice, Registry
from esc50.core.training.distributed import Distributed
from esc50.core.training.features import (audio_on_device, featurize_all,
                                          featurize_bytes_per_sample)
from esc50.core.training.memory import check_data_memory
from esc50.core.training.normalize import FeatureNormalizer
from esc50.core.training.scoring import SCORE_BATCH
from esc50.core.training.stages import (BatchRecord, PreparedBatch, Stages, draw_states,
                                        replaying)
from esc50.core.training.validation import ValidationClips

def prepared_ahead(batches: Iterator[PreparedBatch], device: torch.device
                   ) -> Iterator[PreparedBatch]:
    """``batches``, each prepared one step ahead: the next batch is prepared before the current
    one is handed over. On a GPU it is prepared on a side CUDA stream, so its augmentation and
    featurization (memory-bound work) run beside the caller's step. The draws stay in the same
    order, so the batches are the same as prepared one after the other, and each carries its
    own record of where it came from."""
    cuda = device.type == "cuda"
    main = torch.cuda.current_stream(device) if cuda else None
    side = torch.cuda.Stream(device) if cuda else None
    if cuda:
        side.wait_stream(main)  # what the main stream wrote before (normalizer, audio) is ready

    def next_one() -> PreparedBatch | None:
        with torch.cuda.stream(side) if cuda else nullcontext():
            return next(batches, None)

    upcoming = next_one()
    while upcoming is not None:
        if cuda:
            main.wait_stream(side)  # this batch is ready before the step that uses it
            for tensor in upcoming.tensors():
                tensor.record_stream(main)  # not reused by the side stream while the step runs
        current, upcoming = upcoming, next_one()  # queued beside the caller's step
        yield current


@dataclass
class ExperimentData:
    """What the runs of one experiment share in one process (the folds of ``esc50 cv``): the
    dataset's clip table and the sha256 of every clip (read once), the decoded audio and the
    features (each computed once). A run over the same files (the same digests) reuses them.
    Holding one is the caller's promise that its runs share every setting that reading,
    decoding and featurizing use."""

    table: ClipTable | None = None
    digests: dict[str, str] | None = None  # sha256 by clip name
    audio: AudioCache | None = None
    features: tuple[torch.Tensor, torch.Tensor] | None = None  # what the cache holds, frames

    def read_clips(self, config: TaskConfig, registry: Registry,
                   dataset: Choice | None = None) -> ClipTable:
        """The dataset's clip table (names and metadata, no audio), read on the first call with
        the run's ``dataset`` plugin (chosen from ``registry`` when not given); the sha256 of
        every clip with it."""
        if self.table is None:
            self.table = find_clips(resolve_data_dir(config.data), config, registry,
                                    dataset=dataset)
            self.digests = dataset_digests(self.table)
        return self.table

    def holds_audio(self, digests: dict[str, str]) -> bool:
        return self.audio is not None and self.digests == digests


class FeatureSource:
    """Training and validation batches (:class:`PreparedBatch`) of a split.

    It decodes the clips once, fits the classifier's normalizer on the training clips (without
    augmentation), owns the training loader (a class-balanced sampler drawing from
    ``sampler_generator``; sharded per process under torchrun) and the validation clips in the
    batches every scoring of them uses (:mod:`esc50.core.training.validation`). With
    :class:`ExperimentData`, decoded audio and features of an earlier run over the same files
    are reused."""

    def __init__(self, config: TaskConfig, stages: Stages, table: ClipTable, split: Split,
                 digests: dict[str, str], device: torch.device, dist: Distributed,
                 log: Callable[[str], None], sampler_generator: torch.Generator,
                 shared: ExperimentData | None = None) -> None:
        self.config, self.stages, self.device, self.table = config, stages, device, table
        self.split = split
        # this process's share of a step's batch_size clips, computed once
        self.step_batch = dist.per_process_batch(config.batch_size)
        self.accumulate, self.micro_batch = 1, self.step_batch
        self.featurize_chunk = config.batch_size
        classifier = stages.classifier
        started = time.perf_counter()
        reused = shared is not None and shared.holds_audio(digests)
        if reused:
            audio = shared.audio
        else:
            self.featurize_chunk = check_data_memory(config, len(table.clips),
                                                     classifier.feature_shape,
                                                     featurize_bytes_per_sample(stages, config,
                                                                                device))
            audio = AudioCache(table.clips, config, skip_bad=config.skip_bad_files, warn=log,
                               digests=list(digests.values()),
                               min_samples=classifier.featurizer.min_samples)
            if shared is not None:
                shared.digests, shared.audio, shared.features = digests, audio, None
        self.audio = audio
        self.train_indices, self.val_indices = ([i for i in side if i not in audio.bad]
                                                for side in split.indices(table))
        if not self.train_indices or (split.holds_out and not self.val_indices):
            side = "training" if not self.train_indices else "validation"
            raise Esc50Error(f"every {side} clip in {table.root} was skipped as bad")
        where = f"in {audio.location}" if audio.location else "in memory"
        how = "reused" if reused else "mapped" if audio.reused else "decoded"
        log(f"{how} {len(table.clips)} clips from "
            f"{table.root} in {time.perf_counter() - started:.1f} s "
            f"({audio.nbytes() / 2**20:.0f} MiB {where}); {len(self.train_indices)} train / "
            f"{len(self.val_indices)} validation ({split.description})")
        augs = stages.augs
        self.cache = (self._cached_features(shared) if config.cache_features
                      and not augs.by_stage["wave"] else None)
        # Waveform batches are gathered where the model trains (on a GPU: not copied and pinned
        # on the host every step).
        self.device_audio = audio_on_device(audio, device) if self.cache is None else None
        carry_audio = self.cache is None and self.device_audio is None  # else indices only
        labels = table.labels
        self.train_audio = ClipDataset(audio, labels, self.train_indices)  # set-up pass
        self.train_set = ClipDataset(audio, labels, self.train_indices, carry_audio)
        self.cache_is_final = False  # the cache holds what featurize gives until below
        if config.normalize:  # statistics of the training clips only, without augmentation
            classifier.normalizer = FeatureNormalizer.fit(self._training_features())
        if self.cache is not None and not augs.by_stage["power"]:
            # Nothing runs between the cache and the features augmentations: cache the
            # normalized features.
            self.cache = stages.finish(*self.cache)
            self.cache_is_final = True

        self.validation = ValidationClips(
            table, audio, self.val_indices, stages,
            lambda loaded, at: self.prepare(loaded, False, None, at))
        self.dist, self.sampler_generator = dist, sampler_generator
        self.use_micro_batches(1)

    def use_micro_batches(self, accumulate: int) -> None:
        """Loaders whose batches are ``1 / accumulate`` of a step's (this process's share of
        ``batch_size``, rounded up): the loop accumulates ``accumulate`` of them per optimizer
        step. A last training batch of one clip is left out (it would break batch
        normalization)."""
        dist, pin = self.dist, self.device.type == "cuda"
        step = self.step_batch
        self.accumulate = accumulate
        self.micro_batch = size = -(-step // accumulate)
        self.train_loader = DataLoader(
            self.train_set, batch_size=size, collate_fn=collate,
            drop_last=len(self.train_indices) // dist.world_size % size == 1,
            sampler=ClassBalancedSampler(self.train_set.labels, self.sampler_generator,
                                         dist.world_size, dist.rank),
            num_workers=self.config.num_workers, pin_memory=pin)

    @property
    def score_batch(self) -> int:
        """Clips a scoring batch holds: at most :data:`SCORE_BATCH`, and no more than a
        training micro-batch (whose memory the plan checked)."""
        return min(SCORE_BATCH, self.micro_batch)

    def optimizer_steps(self) -> int:
        """Optimizer steps per epoch: training batches, ``accumulate`` at a time."""
        return -(-len(self.train_loader) // self.accumulate)

    def step_weights(self) -> list[float]:
        """For each training batch of an epoch, its share of the clips of the optimizer step it
        belongs to (what its mean loss is weighted by, so that accumulated gradients equal one
        step's over all its clips)."""
        sizes = [self.micro_batch] * len(self.train_loader)
        if self.train_loader.drop_last is False and sizes:
            sizes[-1] = len(self.train_loader.sampler) - self.micro_batch * (len(sizes) - 1)
        groups = [sizes[i:i + self.accumulate] for i in range(0, len(sizes), self.accumulate)]
        return [size / sum(group) for group in groups for size in group]

    def steps(self, training: bool, scoring_batch: int | None = None) -> int:
        """Batches in one epoch of training, or of validation in batches of ``scoring_batch``
        (this process's)."""
        if training:
            return len(self.train_loader)
        return len(range(0, len(self.val_indices), scoring_batch)[self.dist.rank::
                                                                   self.dist.world_size])

    def batches(self, generator: torch.Generator | Randomness, epoch: int = 0,
                ahead: bool | None = None) -> Iterator[PreparedBatch]:
        """One epoch of training batches, augmented, with label probabilities [B, classes];
        ``generator`` draws every augmentation. Each batch is prepared one step ahead (on a
        second stream) on a GPU, and wherever ``ahead`` asks for it."""
        def prepared() -> Iterator[PreparedBatch]:
            for step, loaded in enumerate(self.train_loader, start=1):
                where = f" at epoch {epoch}, step {step}"
                draws = draw_states(generator)
                features, frames, targets = self.prepare(loaded, True, generator,
                                                         self.stages.at(where))
                yield PreparedBatch(features, frames, targets, BatchRecord(loaded, draws, where))

        if ahead or (ahead is None and self.device.type == "cuda"):
            return prepared_ahead(prepared(), self.device)
        return prepared()

    def replay(self, record: BatchRecord, generator: torch.Generator | Randomness
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepare a batch again from its record, with the draws it was prepared with and every
        stage's output checked: raises the one-line error of the first plugin whose output is
        wrong or non-finite. Returns its features (in the model's layout) and frame lengths."""
        checked = self.stages.at(f"{record.where} (checked again)", checked=True)
        if record.draws is None:  # a validation batch: nothing drawn
            features, frames, _ = self.prepare(record.loaded, False, None, checked)
            return features, frames
        with replaying(generator, record.draws) as draws:
            features, frames, _ = self.prepare(record.loaded, True, draws, checked)
        return features, frames

    @torch.no_grad()
    def prepare(self, batch: dict[str, torch.Tensor], training: bool,
                generator: torch.Generator | Randomness | None, stages: Stages | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One loader batch through the stages (``stages``: the run's, or a checked copy)."""
        stages = stages or self.stages
        targets = batch["label"].to(self.device, non_blocking=True)
        if training:  # label probabilities: the batch stage (mixup) mixes them
            targets = nn.functional.one_hot(targets, self.config.num_classes).float()
        cached = wav = samples = None
        if self.cache is not None:
            index = batch["index"].to(self.device, non_blocking=True)  # pinned on a GPU
            cached = self.cache[0][index], self.cache[1][index]
        else:
            wav, samples = self._waves(batch)
        features, frames, targets = stages.run(wav, samples, generator if training else None,
                                               targets, cached, self.cache_is_final)
        return stages.classifier.model_input(features), frames, targets

    def _waves(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's float waveforms [B, T] and valid lengths [B] on the training device."""
        if self.device_audio is not None:
            index = batch["index"].to(self.device, non_blocking=True)
            waves, lengths = self.device_audio
            return to_float(waves[index]), lengths[index]
        return (to_float(batch["wav"].to(self.device, non_blocking=True)),  # pinned on a GPU
                batch["length"].to(self.device, non_blocking=True))

    def _cached_features(self, shared: ExperimentData | None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """What :meth:`Stages.featurize` gives for every clip: shared, else computed (and
        shared)."""
        if shared is not None and shared.features is not None:
            return shared.features
        features = featurize_all(self.stages, self.audio, self.device, self.featurize_chunk)
        if shared is not None:
            shared.features = features
        return features

    def _training_features(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(features, frame lengths) of the training clips, unaugmented (and, before the
        normalizer is fitted, unnormalized)."""
        for batch in DataLoader(self.train_set, self.micro_batch, collate_fn=collate):
            features, frames, _ = self.prepare(batch, False, None)
            yield features, frames
