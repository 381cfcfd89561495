"""The trainer: decode once, featurize and augment whole batches on the training device,
Adam + cross-entropy, per-epoch validation, checkpoints and history in a run directory."""

from __future__ import annotations

import csv
import functools
import io
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from esc50.core.audio import to_float
from esc50.core.augment import AugmentationPipeline
from esc50.core.checkpoint import (atomic_write, load_checkpoint, load_model_weights,
                                   save_checkpoint)
from esc50.core.classifier import build_classifier
from esc50.core.collate import collate
from esc50.core.config import TaskConfig, save_config
from esc50.core.contracts import PowerFeaturizer
from esc50.core.datapath import resolve_data_dir
from esc50.core.distributed import Distributed
from esc50.core.dataset import AudioCache, ClipDataset, find_clips, split_indices
from esc50.core.errors import Esc50Error
from esc50.core.normalize import FeatureNormalizer
from esc50.core.plots import plot_learning_curves
from esc50.core.registry import Registry, parse_spec
from esc50.core.sampler import ClassBalancedSampler
from esc50.core.schedule import ema_step, lr_factor

HISTORY_FIELDS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                  "steps", "seconds"]


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    steps: int  # optimizer steps taken (0 in validation)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU; asking for missing CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise Esc50Error(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Esc50Error(f"device {name!r} was asked for but CUDA is not available here")
    return device


class Trainer:
    """One training run, set up from a config and the plugin registry. Plugins are built before
    any audio is decoded, so a bad id or option fails at once.

    Under torchrun each process trains on its shard of every epoch's draw with its share of the
    batch, gradients are averaged by DistributedDataParallel, metrics are summed over processes,
    and rank 0 alone writes the run directory and prints."""

    def __init__(self, config: TaskConfig, registry: Registry,
                 log: Callable[[str], None] = print) -> None:
        self.config = config.validated()
        seed_everything(config.seed)
        device = pick_device(config.device)
        self.dist = Distributed.from_environment(device)
        self.device = self.dist.device(device)
        self.log = log if self.dist.is_main else (lambda _: None)
        log = self.log
        self.classifier = build_classifier(config, registry).to(self.device)
        self.model = self.classifier.model
        if config.weights:
            load_model_weights(self.model, Path(config.weights))
        self.train_model = (DistributedDataParallel(self.model) if self.dist.enabled
                            else self.model)  # the model as training steps call it
        if config.compile:
            self.train_model = torch.compile(self.train_model)
        self.augs = AugmentationPipeline(
            [registry.create("augmentation", s, config).to(self.device) for s in config.augs],
            config.aug_policy)
        featurizer = self.classifier.featurizer
        for aug in self.augs:
            aug.attach(featurizer)
        # A power featurizer's power spectrogram is what gets cached, so that power-stage
        # augmentations can run between it and the compression.
        self.staged = isinstance(featurizer, PowerFeaturizer)
        self.plugins = self._plugin_versions(registry)
        self.params = sum(p.numel() for p in self.model.parameters())

        table = find_clips(resolve_data_dir(config.data), config)
        self.class_names = table.class_names
        started = time.perf_counter()
        cache = AudioCache(table.clips, config, skip_bad=config.skip_bad_files, warn=log)
        train_idx, val_idx = ([i for i in part if i not in cache.bad]
                              for part in split_indices(table, config))
        if not train_idx or not val_idx:
            raise Esc50Error(f"every {'training' if not train_idx else 'validation'} clip in "
                             f"{table.root} was skipped as bad")
        where = f"in {cache.location}" if cache.location else "in memory"
        log(f"{'mapped' if cache.reused else 'decoded'} {len(table.clips)} clips from "
            f"{table.root} in {time.perf_counter() - started:.1f} s "
            f"({cache.nbytes() / 2**20:.0f} MiB {where}); "
            f"{len(train_idx)} train / {len(val_idx)} validation ({self._split_name()})")
        self.train_set = ClipDataset(cache, table.labels, train_idx)
        self.val_set = ClipDataset(cache, table.labels, val_idx)
        val_shard = ClipDataset(cache, table.labels,
                                val_idx[self.dist.rank::self.dist.world_size])
        # Without waveform augmentation every epoch would featurize the same audio again: do it
        # once, for all clips, on the training device.
        self.feature_cache = (self._featurize(cache) if config.cache_features
                              and not self.augs.by_stage["wave"] else None)
        self.cache_finished = False  # the cache holds uncompressed features until below
        if config.normalize:  # statistics of the training clips only, without augmentation
            self.classifier.normalizer = FeatureNormalizer.fit(self._training_features())
        if self.feature_cache is not None and not self.augs.by_stage["power"]:
            # Nothing runs between the cache and the model: cache the finished features.
            features, frames = self.feature_cache
            self.feature_cache = (self._finish(features, training=False), frames)
            self.cache_finished = True

        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
        self.sampler_generator = torch.Generator().manual_seed(config.seed)
        batch_size = self.dist.per_process_batch(config.batch_size)
        self.train_loader = DataLoader(
            self.train_set, batch_size=batch_size, collate_fn=collate,
            sampler=ClassBalancedSampler(self.train_set.labels, self.sampler_generator,
                                         self.dist.world_size, self.dist.rank),
            num_workers=config.num_workers, pin_memory=self.device.type == "cuda")
        self.val_loader = DataLoader(val_shard, batch_size=batch_size, collate_fn=collate,
                                     num_workers=config.num_workers,
                                     pin_memory=self.device.type == "cuda")
        steps_per_epoch = len(self.train_loader)
        self.scheduler = (torch.optim.lr_scheduler.LambdaLR(self.optimizer, functools.partial(
            lr_factor, warmup_steps=round(config.warmup_epochs * steps_per_epoch),
            total_steps=config.num_epochs * steps_per_epoch, cosine=config.scheduler == "cosine"))
            if config.scheduler == "cosine" or config.warmup_epochs else None)
        self.ema = (AveragedModel(self.model, avg_fn=functools.partial(
            ema_step, decay=config.ema_decay), use_buffers=True) if config.ema_decay else None)
        self.aug_generator = torch.Generator(device=self.device).manual_seed(
            config.seed + 1 + self.dist.rank)  # each process its own augmentation draws
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.val_loss_fn = nn.CrossEntropyLoss()
        self.use_amp = config.amp and self.device.type == "cuda"
        self.run_dir: Path | None = None  # set by fit(), or by resume() to the run it continues
        self.history: list[dict[str, float]] = []

    @classmethod
    def resume(cls, run_dir: Path, registry: Registry, data: str | None = None,
               log: Callable[[str], None] = print) -> Trainer:
        """A trainer that continues the run in ``run_dir`` from its last checkpoint: model,
        optimizer, scheduler, normalization, sampler and random-number states, epoch, history."""
        path = run_dir / "last.pt"
        if not path.is_file():
            raise Esc50Error(f"cannot resume {run_dir}: no last.pt (no epoch finished); start the "
                             "run again")
        state = load_checkpoint(path)
        config = TaskConfig().override(**state["config"])
        if data:
            config = config.override(data=data)
        trainer = cls(config, registry, log)
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        if trainer.scheduler is not None:
            trainer.scheduler.load_state_dict(state["scheduler"])
        if state["normalizer"] is not None:
            trainer.classifier.normalizer.load_state_dict(state["normalizer"])
        if trainer.ema is not None:
            trainer.ema.load_state_dict(state["ema"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        trainer.sampler_generator.set_state(rng["sampler"])
        if len(rng["augment"]) != trainer.dist.world_size:
            raise Esc50Error(f"{run_dir} was trained by {len(rng['augment'])} process(es); resume "
                             f"it with as many, not {trainer.dist.world_size}")
        trainer.aug_generator.set_state(rng["augment"][trainer.dist.rank])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        trainer.run_dir, trainer.history = run_dir, state["history"]
        if trainer.dist.is_main:  # a kill after last.pt was written leaves these an epoch behind
            trainer._write_history(run_dir, trainer.history)
        log(f"resuming {run_dir} after epoch {len(trainer.history)}")
        return trainer

    def _split_name(self) -> str:
        if self.config.split == "random":
            return f"random split, train_ratio={self.config.train_ratio}, seed={self.config.seed}"
        return f"validation fold {self.config.val_fold}"

    def _plugin_versions(self, registry: Registry) -> dict[str, dict[str, str]]:
        specs = [("model", self.config.model), ("featurizer", self.config.featurizer)]
        specs += [("augmentation", s) for s in self.config.augs]
        used = {}
        for kind, spec in specs:
            component = registry.resolve(kind, parse_spec(spec)[0])
            used[spec] = {"kind": kind, "id": component.id, "package": component.package,
                          "version": component.version}
        return used

    def fit(self) -> Path:
        """Train until ``num_epochs`` (continuing a resumed run); return the run directory.
        Ctrl-C stops with a message saying how to resume from the last finished epoch."""
        run_dir = self.run_dir = self.run_dir or self._shared_run_dir()
        history = self.history
        self.log(f"training {self.config.model} ({self.params:,} parameters) on {self.device} "
                 f"for {self.config.num_epochs} epochs; run directory {run_dir}")
        best = max((row["val_accuracy"] for row in history), default=-1.0)
        for epoch in range(len(history) + 1, self.config.num_epochs + 1):
            started = time.perf_counter()
            try:
                train = self._run_epoch(self.train_loader, epoch, training=True)
                val = self._run_epoch(self.val_loader, epoch, training=False)
            except KeyboardInterrupt:
                done = f"last.pt holds epoch {epoch - 1}" if epoch > 1 else "no epoch finished"
                raise Esc50Error(f"interrupted in epoch {epoch}; {done}: continue with "
                                 f"`esc50 train --resume {run_dir}`") from None
            row = {"epoch": epoch, "train_loss": train.loss, "train_accuracy": train.accuracy,
                   "val_loss": val.loss, "val_accuracy": val.accuracy,
                   "lr": self.optimizer.param_groups[0]["lr"],
                   "steps": (history[-1]["steps"] if history else 0) + train.steps,
                   "seconds": time.perf_counter() - started}
            history.append(row)
            self.log(f"epoch {epoch}/{self.config.num_epochs}: train loss {train.loss:.3f} "
                     f"acc {train.accuracy:.3f} | val loss {val.loss:.3f} acc {val.accuracy:.3f} "
                     f"| {row['seconds']:.1f} s")
            state = self._checkpoint_state(epoch, history)
            if self.dist.is_main:
                self._save_epoch(run_dir, state, history, is_best=val.accuracy > best)
            best = max(best, val.accuracy)
        self.dist.barrier()
        return run_dir

    @property
    def evaluated_model(self) -> nn.Module:
        """The weights validation scores and best.pt keeps: the moving average when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def close(self) -> None:
        """Leave the process group after training under torchrun. The DistributedDataParallel
        wrapper goes first: destroyed after the group, it was seen to hang its process."""
        self.train_model = self.model
        self.dist.close()

    def _save_epoch(self, run_dir: Path, state: dict, history: list[dict[str, float]],
                    is_best: bool) -> None:
        """last.pt, best.pt when the epoch is the best so far, history, metrics and curves."""
        save_checkpoint(state, run_dir / "last.pt")
        if is_best:  # best.pt is for prediction: the validated weights, no optimizer or RNG state
            save_checkpoint({**{k: v for k, v in state.items()
                                if k not in ("optimizer", "scheduler", "rng", "ema")},
                             "model": self.evaluated_model.state_dict()}, run_dir / "best.pt")
        self._write_history(run_dir, history)
        plot_learning_curves(history, f"{run_dir.name} ({self.config.model})",
                             run_dir / "curves.png")

    def _shared_run_dir(self) -> Path:
        """Rank 0 makes the run directory; every process learns its path (or rank 0's error)."""
        made: Path | Esc50Error | None = None
        if self.dist.is_main:
            try:
                made = self._make_run_dir()
            except Esc50Error as exc:
                made = exc
        made = self.dist.from_main(made)
        if isinstance(made, Esc50Error):
            raise made
        return made

    def _make_run_dir(self) -> Path:
        name = self.config.run_name or (f"{datetime.now():%Y%m%d-%H%M%S}-"
                                        f"{self.config.model.split(':')[0].split('.')[-1]}")
        run_dir = Path(self.config.output_dir) / name
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise Esc50Error(f"run directory {run_dir} already exists: choose another "
                             "--run-name") from None
        except OSError as exc:
            raise Esc50Error(f"cannot create run directory {run_dir}: {exc.strerror}") from None
        save_config(self.config, run_dir / "config.toml")
        return run_dir

    def _on_device(self, batch: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Float waveforms, lengths and labels of a batch, on the training device."""
        non_blocking = self.device.type == "cuda"
        return (to_float(batch["wav"].to(self.device, non_blocking=non_blocking)),
                batch["length"].to(self.device, non_blocking=non_blocking),
                batch["label"].to(self.device, non_blocking=non_blocking))

    def _uncompressed(self, wav: torch.Tensor) -> torch.Tensor:
        """What the feature cache holds: a power featurizer's power spectrogram, else features."""
        featurizer = self.classifier.featurizer
        return featurizer.power(wav) if self.staged else featurizer(wav)

    @torch.no_grad()
    def _featurize(self, cache: AudioCache) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncompressed features and frame lengths of every cached clip (padded to length_wav)."""
        features, frames = [], []
        for start in range(0, cache.waves.shape[0], self.config.batch_size):
            wav = to_float(cache.waves[start:start + self.config.batch_size].to(self.device))
            lengths = cache.lengths[start:start + self.config.batch_size].to(self.device)
            features.append(self._uncompressed(wav))
            frames.append(self.classifier.featurizer.frame_lengths(lengths))
        return torch.cat(features), torch.cat(frames)

    def _training_features(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(features, frame lengths) batches of the training clips, unaugmented (and, before the
        normalizer is fitted, unnormalized)."""
        for batch in DataLoader(self.train_set, self.config.batch_size, collate_fn=collate):
            yield self._features(batch, training=False)[:2]

    @torch.no_grad()
    def _features(self, batch: dict[str, torch.Tensor], training: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalized features, frame lengths and labels of a batch on the device, from the
        cache or the audio; in training after the wave and power augmentations."""
        labels = batch["label"].to(self.device)
        if self.feature_cache is not None:
            index = batch["index"].to(self.device)
            features, frames = self.feature_cache[0][index], self.feature_cache[1][index]
            if self.cache_finished:
                return features, frames, labels
        else:
            wav, lengths, _ = self._on_device(batch)
            if training:
                wav = self.augs.transform("wave", wav, self.aug_generator)
            features = self._uncompressed(wav)
            frames = self.classifier.featurizer.frame_lengths(lengths)
        return self._finish(features, training), frames, labels

    def _finish(self, features: torch.Tensor, training: bool) -> torch.Tensor:
        """Uncompressed features to the model's input: power augmentations (in training), the
        featurizer's compression, normalization."""
        if self.staged:
            if training:
                features = self.augs.transform("power", features, self.aug_generator)
            features = self.classifier.featurizer.compress(features)
        if self.classifier.normalizer is not None:
            features = self.classifier.normalizer(features)
        return features

    @torch.no_grad()
    def _prepare(self, batch: dict[str, torch.Tensor], training: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, frame lengths and targets of a batch: label probabilities [B, classes] in
        training (after the spec and batch augmentations; mixup mixes labels), class indices
        [B] otherwise."""
        features, frame_lengths, targets = self._features(batch, training)
        if training:
            features = self.augs.transform("spec", features, self.aug_generator)
            targets = nn.functional.one_hot(targets, self.config.num_classes).float()
            features, targets = self.augs.mix(features, targets, self.aug_generator)
        return self.classifier.model_input(features), frame_lengths, targets

    def _run_epoch(self, loader: DataLoader, epoch: int, training: bool) -> EpochStats:
        model = self.train_model if training else self.evaluated_model
        model.train(training)
        total_loss, correct, seen = 0.0, 0, 0
        desc = f"epoch {epoch} {'train' if training else 'val'}"
        loss_fn = self.loss_fn if training else self.val_loss_fn
        bar = tqdm(loader, desc=desc, leave=False,
                   disable=not (self.config.progress and self.dist.is_main))
        for batch in bar:
            features, frame_lengths, targets = self._prepare(batch, training)
            with torch.set_grad_enabled(training), torch.autocast(
                    self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                logits = model(features, frame_lengths)
                loss = loss_fn(logits.float(), targets)
            if not torch.isfinite(loss):
                raise Esc50Error(f"{desc}: the loss became {loss.item()}; lower --lr or check the "
                                 "data")
            if training:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
            labels = targets.argmax(1) if targets.dim() == 2 else targets
            total_loss += loss.item() * len(labels)
            correct += int((logits.argmax(dim=1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        steps = len(loader) if training else 0
        total_loss, correct, seen = self.dist.sum([total_loss, correct, seen], self.device)
        return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), steps)

    def _checkpoint_state(self, epoch: int, history: list[dict[str, float]]) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "normalizer": (self.classifier.normalizer.state_dict()
                               if self.classifier.normalizer is not None else None),
                "rng": {"torch": torch.get_rng_state(),
                        "sampler": self.sampler_generator.get_state(),
                        "augment": self.dist.gather(self.aug_generator.get_state()),
                        "cuda": (torch.cuda.get_rng_state_all()
                                 if self.device.type == "cuda" else None)},
                "epoch": epoch, "config": self.config.to_dict(), "class_names": self.class_names,
                "plugins": self.plugins, "history": history}

    def _write_history(self, run_dir: Path, history: list[dict[str, float]]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)
        atomic_write(run_dir / "history.csv", lambda h: h.write(text.getvalue().encode()))
        best = max(history, key=lambda r: r["val_accuracy"])
        metrics = {
            "model": self.config.model, "parameters": self.params, "device": str(self.device),
            "epochs": len(history), "best_epoch": best["epoch"],
            "best_val_accuracy": best["val_accuracy"],
            "final_val_accuracy": history[-1]["val_accuracy"],
            "seconds_per_epoch": sum(r["seconds"] for r in history) / len(history),
            "split": self._split_name(), "train_clips": len(self.train_set),
            "val_clips": len(self.val_set), "plugins": self.plugins,
        }
        atomic_write(run_dir / "metrics.json",
                     lambda h: h.write(json.dumps(metrics, indent=2).encode()))
