"""The trainer assembles one run from a config and the plugin registry (plugins, dataset, split,
batches, training state, loggers) and trains it epoch by epoch (:func:`loop.run_epoch`),
writing the run folder after every epoch (:mod:`esc50.core.results.folder`).

Under torchrun each process trains on its shard of every epoch's draw with its share of the
batch, gradients are averaged by DistributedDataParallel, metrics are summed over processes,
and rank 0 alone writes the run folder and prints."""

from __future__ import annotations

import shutil
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn.parallel import DistributedDataParallel

from esc50.core.config import TaskConfig
from esc50.core.data.clips import find_clips, leftovers
from esc50.core.data.collate import collate
from esc50.core.data.location import resolve_data_dir
from esc50.core.data.split import Split, dataset_digests, make_split
from esc50.core.errors import Esc50Error
from esc50.core.plugins.contracts import RunStart
from esc50.core.plugins.registry import Registry, RunPlugins
from esc50.core.results import folder
from esc50.core.results.checkpoint import load_checkpoint, load_model_weights
from esc50.core.results.loggers import HISTORY_LOGGER, Loggers
from esc50.core.training import loop
from esc50.core.training.batches import ExperimentData, FeatureSource
from esc50.core.training.classifier import build_classifier
from esc50.core.training.distributed import Distributed, pick_device
from esc50.core.training.memory import keep_freed_memory
from esc50.core.training.scoring import final_evaluation
from esc50.core.training.stages import AugmentationPipeline, Stages, setup_pass
from esc50.core.training.state import Generators, TrainingState, seed_everything
from esc50.core.plugins.contracts import Randomness


class Trainer:
    """One run. Plugins are chosen and built before any audio is decoded, so a bad id or option
    fails at once. ``recorded_split``: a resumed run's split (the data is checked against it;
    the model's one-time set-up from ``weights`` is skipped: its checkpoint holds the weights)."""

    def __init__(self, config: TaskConfig, registry: Registry, log: Callable[[str], None] = print,
                 recorded_split: Split | None = None, allow_changed_data: bool = False,
                 shared: ExperimentData | None = None) -> None:
        config = registry.typed_options(config.validated())
        seed_everything(config.seed)
        self.dist = Distributed.from_environment(pick_device(config.device))
        self.device = self.dist.device(pick_device(config.device))
        self.log = log if self.dist.is_main else (lambda _: None)
        plugins = RunPlugins.of(config, registry)  # an unknown id fails before any I/O
        self.plugins = plugins.recorded()
        keep_freed_memory()  # every step allocates the same large buffers again
        self.loggers = Loggers({c.spec: c.build(config) for c in
                                [registry.choose("logger", HISTORY_LOGGER, config), *plugins.loggers]}
                               if self.dist.is_main else {}, self.log)
        shared = shared or ExperimentData()
        if shared.table is None:  # names and metadata first: the dataset decides the classes,
            # the sample rate and the clip length; audio is decoded once every plugin is built
            shared.table = find_clips(resolve_data_dir(config.data), config, registry)
            shared.digests = dataset_digests(shared.table)
        table, digests = shared.table, shared.digests
        for line in leftovers(table):
            self.log(f"warning: {line}")
        self.class_names = table.class_names
        config = self.config = config.for_dataset(table.class_names, table.sample_rate,
                                                  table.clip_seconds)
        self.classifier = build_classifier(config, registry, recorded_split is not None,
                                           plugins).to(self.device)
        model = self.classifier.model
        if config.weights and recorded_split is None:
            load_model_weights(model, Path(config.weights))
        augs = {c.spec: c.build(config).to(self.device) for c in plugins.augs}
        for aug in augs.values():
            aug.attach(self.classifier.featurizer)
        labels = {self.classifier.featurizer: plugins.featurizer.label, model: plugins.model.label,
                  **{augs[c.spec]: c.label for c in plugins.augs}}
        self.stages = Stages(self.classifier, AugmentationPipeline(list(augs.values()),
                                                                   config.aug_policy), labels)
        self.augs = augs
        if recorded_split is None:
            self.split = make_split(table, config, digests)
        else:
            self.split = recorded_split
            self.split.check_data(table, digests, allow_changed_data, self.log)
        generators = Generators.seeded(config.seed, self.dist.rank, self.device)
        self.data = FeatureSource(config, self.stages, table, self.split, digests, self.device,
                                  self.dist, self.log, generators.sampler, shared)
        self.state = TrainingState.create(model, config, len(self.data.train_loader), generators)
        self.step_model = DistributedDataParallel(model) if self.dist.enabled else model
        if config.compile:
            self.step_model = torch.compile(self.step_model)
        self.amp = config.amp if self.device.type == "cuda" else config.cpu_amp
        self.randomness = Randomness(generators.examples, generators.signals)
        train_clips = self.data.train_audio
        setup_pass(self.stages, collate([train_clips[i] for i in range(min(2, len(train_clips)))]),
                   config.num_classes, config.seed, self.device)
        self.run_dir: Path | None = None  # set by fit(), or by resume() to the run it continues

    @classmethod
    def resume(cls, run_dir: Path, registry: Registry, data: str | None = None,
               epochs: int | None = None, allow_changed_data: bool = False,
               log: Callable[[str], None] = print, shared: ExperimentData | None = None
               ) -> Trainer:
        """The run in ``run_dir`` rebuilt from its last checkpoint's config and split, then its
        training state loaded. ``epochs`` extends it (the schedule stretched from here on)."""
        path = run_dir / folder.CHECKPOINTS["last"]
        if not path.is_file():
            raise Esc50Error(f"cannot resume {run_dir}: no last.pt (no epoch finished); start the "
                             "run again")
        checkpoint = load_checkpoint(path)
        if "split" not in checkpoint:
            raise Esc50Error(f"cannot resume {run_dir}: its checkpoint records no split (written "
                             "by an older esc50); start the run again")
        registry.check_recorded(checkpoint["plugins"], log)
        config = TaskConfig().override(**{**checkpoint["config"], **({"data": data} if data else {})})
        done, recorded_epochs = len(checkpoint["history"]), config.num_epochs
        extended = epochs is not None and epochs != recorded_epochs
        if extended:
            if epochs < done:
                raise Esc50Error(f"--epochs {epochs}: {run_dir} has already trained {done} epochs")
            config = config.override(num_epochs=epochs)
        trainer = cls(config, registry, log, Split.from_dict(checkpoint["split"]),
                      allow_changed_data, shared)
        if extended:
            log(f"extending {run_dir} from {recorded_epochs} to {epochs} epochs: the "
                "learning-rate schedule is stretched from here on, so the run differs from a "
                f"fresh {epochs}-epoch run")
        trainer.state.load_state_dict(checkpoint, trainer.dist)
        if checkpoint["normalizer"] is not None:
            trainer.classifier.normalizer.load_state_dict(checkpoint["normalizer"])
        trainer.run_dir = run_dir
        if trainer.dist.is_main:  # a kill after last.pt was written leaves these an epoch behind
            folder.remove_partial_files(run_dir)
            folder.save_config(trainer.config, run_dir / "config.toml")
            folder.write_metrics(run_dir, trainer.state.history, trainer.metrics())
        log(f"resuming {run_dir} after epoch {done}")
        return trainer

    def fit(self) -> Path:
        """Train until ``num_epochs`` (continuing a resumed run); return the run folder. Ctrl-C
        stops with a message saying how to resume from the last finished epoch."""
        fresh = self.run_dir is None
        run_dir = self.run_dir = self.run_dir or self._shared_run_dir()
        lock = folder.locked(run_dir, "use another --run-name") if self.dist.is_main \
            else nullcontext()
        try:
            with lock:
                self._train(run_dir)
        except BaseException:
            if fresh and not self.state.history and self.dist.is_main:  # nothing worth keeping
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        self.dist.barrier()
        return run_dir

    def _train(self, run_dir: Path) -> None:
        config, state, history = self.config, self.state, self.state.history
        params = sum(p.numel() for p in state.model.parameters())
        self.log(f"training {config.model} ({params:,} parameters) on {self.device} for "
                 f"{config.num_epochs} epochs; run directory {run_dir}")
        best = max((row["val_accuracy"] for row in history), default=-1.0)
        self.loggers.emit("start", RunStart(run_dir, config, self.class_names, history))
        for epoch in range(len(history) + 1, config.num_epochs + 1):
            started = time.perf_counter()
            for aug in self.augs.values():
                aug.reset_counts()
            steps_before = history[-1]["steps"] if history else 0
            try:
                train = self.run_epoch(epoch, training=True)
                val = self.run_epoch(epoch, training=False)
            except KeyboardInterrupt:
                if not history:
                    raise Esc50Error(f"interrupted in epoch {epoch} before any epoch finished: "
                                     f"nothing was kept ({run_dir} is removed)") from None
                raise Esc50Error(f"interrupted in epoch {epoch}; last.pt holds epoch "
                                 f"{epoch - 1}: continue with `esc50 train --resume {run_dir}`"
                                 ) from None
            state.augmented = {spec: aug.counts() for spec, aug in self.augs.items()}
            history.append({
                "epoch": epoch, "train_loss": train.loss, "train_accuracy": train.accuracy,
                "val_loss": val.loss, "val_accuracy": val.accuracy,
                "lr": state.optimizer.param_groups[0]["lr"], "steps": steps_before + train.steps,
                "seconds": time.perf_counter() - started})
            self.log(f"epoch {epoch}/{config.num_epochs}: train loss {train.loss:.3f} "
                     f"acc {train.accuracy:.3f} | val loss {val.loss:.3f} acc {val.accuracy:.3f} "
                     f"| {history[-1]['seconds']:.1f} s")
            checkpoint = self.checkpoint()
            if self.dist.is_main:
                self._save(run_dir, epoch, checkpoint, val.accuracy > best)
            best = max(best, val.accuracy)
        self.loggers.finish(len(history), {**self.metrics(), **folder.headline(history)},
                            config.sample_rate, *final_evaluation(self.data, state.scored_model,
                                                                  self.amp, self.class_names))

    def run_epoch(self, epoch: int, training: bool) -> loop.EpochStats:
        """One epoch of training or validation (:func:`loop.run_epoch`)."""
        state, done = self.state, self.state.history[-1]["steps"] if self.state.history else 0
        on_step = (lambda step, running, lr: self.loggers.emit(
            "step", done + step, {"train_loss": running, "lr": lr})) \
            if training and self.loggers.want("step") else None
        loss = (loop.training_loss(state.model, self.config.label_smoothing) if training
                else loop.validation_loss)
        return loop.run_epoch(self.data, state, epoch, training, step_model=self.step_model,
                              randomness=self.randomness, loss_fn=loss, amp=self.amp,
                              dist=self.dist, progress=self.config.progress and self.dist.is_main,
                              on_step=on_step)

    def _save(self, run_dir: Path, epoch: int, checkpoint: dict[str, Any], best: bool) -> None:
        """last.pt (and best.pt when this epoch is the best so far), metrics and curves."""
        best_state = None
        if best:  # best.pt: the validated weights and what prediction needs, nothing to resume
            best_state = {k: v for k, v in checkpoint.items()
                          if k not in ("optimizer", "scheduler", "rng", "ema", "augmented")}
            best_state["model"] = self.state.scored_model.state_dict()
        try:
            curves = folder.save_epoch(run_dir, checkpoint, best_state, self.metrics(),
                                       f"{run_dir.name} ({self.config.model})",
                                       draw_curves=folder.curves_due(epoch, self.config.num_epochs))
        except KeyboardInterrupt:  # the writes are atomic: the last complete epoch holds
            raise Esc50Error(f"interrupted while saving epoch {epoch}; continue with "
                             f"`esc50 train --resume {run_dir}`") from None
        self.loggers.emit("epoch", self.state.history[-1])
        if curves is not None:
            self.loggers.emit("figure", "learning_curves", curves, epoch)

    def checkpoint(self) -> dict[str, Any]:
        """last.pt: the training state, with what prediction needs."""
        normalizer = self.classifier.normalizer
        return {**self.state.state_dict(self.dist), "config": self.config.to_dict(),
                "class_names": self.class_names, "plugins": self.plugins,
                "split": self.split.to_dict(),
                "normalizer": normalizer.state_dict() if normalizer is not None else None}

    def metrics(self) -> dict[str, Any]:
        """What metrics.json says of the run besides its per-epoch figures."""
        return {"model": self.config.model,
                "parameters": sum(p.numel() for p in self.state.model.parameters()),
                "device": str(self.device),
                "weights": "moving average (ema_decay)" if self.state.average else "final",
                "split": self.split.description, "train_clips": len(self.data.train_set),
                "val_clips": len(self.data.val_set), "plugins": self.plugins,
                "augmented_in_last_epoch": self.state.augmented}

    def close(self) -> None:
        """Leave the process group after training under torchrun. The DistributedDataParallel
        wrapper goes first: destroyed after the group, it was seen to hang its process."""
        self.step_model = self.state.model
        self.dist.close()

    def _shared_run_dir(self) -> Path:
        """Rank 0 makes the run folder; every process learns its path (or rank 0's error)."""
        made: Path | Esc50Error | None = None
        if self.dist.is_main:
            name = self.config.run_name or (f"{datetime.now():%Y%m%d-%H%M%S}-"
                                            f"{self.config.model.split(':')[0].split('.')[-1]}")
            try:
                made = folder.create(Path(self.config.output_dir), name, self.config,
                                     self.split.to_dict())
            except Esc50Error as exc:
                made = exc
        made = self.dist.from_main(made)
        if isinstance(made, Esc50Error):
            raise made
        return made
