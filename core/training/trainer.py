"""The trainer assembles one run from a config and the plugin registry (plugins, dataset, split,
stages, batches, training state, run folder) and trains it epoch by epoch (:mod:`loop`).

Under torchrun each process trains on its shard of every epoch's draw with its share of the
batch, gradients are averaged by DistributedDataParallel, metrics are summed over processes,
and rank 0 alone writes the run folder and prints."""

from __future__ import annotations

import math
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel

from esc50.core.config import TaskConfig
from esc50.core.data.clips import leftovers
from esc50.core.data.collate import collate
from esc50.core.data.split import Split, make_split
from esc50.core.errors import Esc50Error, Interrupted
from esc50.core.plugin_api.contracts import Randomness, RunStart
from esc50.core.plugin_api.choices import RunPlugins
from esc50.core.plugin_api.registry import Registry
from esc50.core.results import folder
from esc50.core.results.checkpoint import load_model_weights
from esc50.core.training import loop
from esc50.core.training.batches import ExperimentData, FeatureSource
from esc50.core.training.classifier import build_classifier
from esc50.core.training.device import pick_device, use_autocast
from esc50.core.training.distributed import Distributed
from esc50.core.training.memory import keep_freed_memory
from esc50.core.training.recorder import RunRecorder
from esc50.core.training.scoring import Scoring
from esc50.core.training.stages import build_stages, setup_pass
from esc50.core.training.state import Generators, TrainingState, seed_everything


class Trainer:
    """One run. Plugins are chosen and built before any audio is decoded, so a bad id or option
    fails at once. ``recorded_split``: a resumed run's split (the data is checked against it).
    ``restoring``: a checkpoint's weights follow, so the model's one-time set-up (published
    weights, ``weights``) is skipped."""

    def __init__(self, config: TaskConfig, registry: Registry, log: Callable[[str], None] = print,
                 recorded_split: Split | None = None, allow_changed_data: bool = False,
                 shared: ExperimentData | None = None, restoring: bool = False) -> None:
        config = registry.typed_options(config.validated())
        seed_everything(config.seed)
        self.dist = Distributed.from_environment(pick_device(config.device))
        self.device = self.dist.device(pick_device(config.device))
        self.log = log if self.dist.is_main else (lambda _: None)
        plugins = RunPlugins.of(config, registry)  # an unknown id fails before any I/O
        keep_freed_memory()  # every step allocates the same large buffers again
        shared = shared or ExperimentData()
        # names and metadata first: the dataset decides the classes, the sample rate and the
        # clip length; audio is decoded once every plugin is built
        table = shared.read_clips(config, registry, plugins.dataset)
        for line in leftovers(table):
            self.log(f"warning: {line}")
        self.class_names = table.class_names
        config = self.config = config.for_dataset(table.class_names, table.sample_rate,
                                                  table.clip_seconds)
        self.classifier = build_classifier(config, registry, restoring, plugins).to(self.device)
        model = self.classifier.model
        if config.weights and not restoring:
            load_model_weights(model, Path(config.weights))
        self.augs, self.stages = build_stages(self.classifier, plugins, config, self.device)
        self.split = recorded_split or make_split(table, config, shared.digests)
        if recorded_split is not None:
            self.split.check_data(table, shared.digests, allow_changed_data, self.log)
        generators = Generators.seeded(config.seed, self.dist.rank, self.device)
        self.randomness = Randomness(generators.examples, generators.signals)
        self.amp = use_autocast(config, self.device, self.log)
        self.data = FeatureSource(config, self.stages, table, self.split, shared.digests,
                                  self.device, self.dist, self.log, generators.sampler, shared)
        clips = self.data.train_audio
        setup_pass(self.stages, collate([clips[i] for i in range(min(2, len(clips)))]),
                   config.num_classes, config.seed, self.device)
        accumulate = loop.plan_memory(self.data, model, config, self.amp, self.log)
        self.config = config = config.override(accumulate=accumulate)  # recorded in the run
        self.scoring = Scoring(self.data.score_batch, self.amp)  # recorded in its checkpoints
        self.state = TrainingState.create(model, config, self.data.optimizer_steps(), generators)
        self.step_model = DistributedDataParallel(model) if self.dist.enabled else model
        if config.compile:
            self.step_model = torch.compile(self.step_model)
        self.recorder = RunRecorder(config, self.dist, registry, plugins, self.data,
                                    self.classifier.normalizer, self.scoring, self.log)
        self.loggers = self.recorder.loggers
        self.run_dir: Path | None = None  # set by fit(), or by resume to the run it continues

    def fit(self) -> Path:
        """Train until ``num_epochs`` (continuing a resumed run); return the run folder. Ctrl-C
        stops with a message saying how to resume from the last finished epoch."""
        fresh = self.run_dir is None
        run_dir = self.run_dir = self.run_dir or self.recorder.create(self.split.to_dict())
        lock = folder.locked(run_dir, "use another --run-name") if self.dist.is_main \
            else nullcontext()
        try:
            with lock:
                self._train(run_dir)
        except BaseException as exc:
            kept = bool(self.state.history)
            if fresh and not kept and self.dist.is_main:  # nothing worth keeping
                shutil.rmtree(run_dir, ignore_errors=True)
            if isinstance(exc, KeyboardInterrupt):  # outside an epoch: a logger's event, say
                raise Interrupted(
                    f"interrupted after epoch {len(self.state.history)}; last.pt holds the last "
                    f"epoch saved: continue with `esc50 train --resume {run_dir}`" if kept else
                    f"interrupted before any epoch finished: nothing was kept ({run_dir} is "
                    "removed)") from None
            raise
        self.dist.barrier()
        return run_dir

    def _train(self, run_dir: Path) -> None:
        config, state, history = self.config, self.state, self.state.history
        params = sum(p.numel() for p in state.model.parameters())
        self.log(f"training {config.model} ({params:,} parameters) on {self.device} for "
                 f"{config.num_epochs} epochs; run directory {run_dir}")
        best = max((row["val_accuracy"] for row in folder.held_out_rows(history)), default=-1.0)
        self.loggers.emit("start", RunStart(run_dir, config, self.class_names, history))
        for epoch in range(len(history) + 1, config.num_epochs + 1):
            started, steps = time.perf_counter(), history[-1]["steps"] if history else 0
            for aug in self.augs.values():
                aug.reset_counts()
            try:
                train = self.run_epoch(epoch, True)
                val = self.run_epoch(epoch, False) if self.split.holds_out else None
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted in epoch {epoch}; last.pt holds epoch {epoch - 1}: "
                                 f"continue with `esc50 train --resume {run_dir}`" if history else
                                 f"interrupted in epoch {epoch} before any epoch finished: nothing "
                                 f"was kept ({run_dir} is removed)") from None
            state.augmented = {spec: aug.counts() for spec, aug in self.augs.items()}
            history.append({
                "epoch": epoch, "train_loss": train.loss, "train_accuracy": train.accuracy,
                "val_loss": val.loss if val else math.nan,
                "val_accuracy": val.accuracy if val else math.nan,
                "lr": state.optimizer.param_groups[0]["lr"], "steps": steps + train.steps,
                "seconds": time.perf_counter() - started})
            scored = f"val loss {val.loss:.3f} acc {val.accuracy:.3f}" if val else \
                "nothing held out"
            self.log(f"epoch {epoch}/{config.num_epochs}: train loss {train.loss:.3f} "
                     f"acc {train.accuracy:.3f} | {scored} | {history[-1]['seconds']:.1f} s")
            self.recorder.save_epoch(run_dir, state, best=val is not None and val.accuracy > best)
            best = max(best, val.accuracy) if val else best
        metrics = {**self.recorder.metrics(state), **folder.headline(history)}
        if not self.split.holds_out:
            self.recorder.write_card(run_dir, state, None)
            self.loggers.finish(len(history), metrics, config.sample_rate, None, None)
            return
        evaluation, samples = self.data.validation.final_evaluation(state.scored_model,
                                                                    self.scoring)
        report = evaluation()
        self.recorder.write_card(run_dir, state, report)
        self.loggers.finish(len(history), metrics, config.sample_rate, lambda: report, samples)

    def run_epoch(self, epoch: int, training: bool) -> loop.EpochStats:
        """One epoch of training or validation (:func:`loop.run_epoch`)."""
        state, done = self.state, self.state.history[-1]["steps"] if self.state.history else 0
        on_step = (lambda step, running, lr: self.loggers.emit(
            "step", done + step, {"train_loss": running, "lr": lr})) \
            if training and self.loggers.want("step") else None
        loss = (loop.training_loss(state.model, self.config.label_smoothing) if training
                else loop.validation_loss)
        return loop.run_epoch(self.data, state, epoch, training, step_model=self.step_model,
                              randomness=self.randomness, loss_fn=loss, scoring=self.scoring,
                              dist=self.dist, progress=self.config.progress and self.dist.is_main,
                              on_step=on_step)

    def close(self) -> None:
        """Leave the process group after training under torchrun. The DistributedDataParallel
        wrapper goes first: destroyed after the group, it was seen to hang its process."""
        self.step_model = self.state.model
        self.dist.close()
