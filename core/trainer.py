"""The trainer: Adam + cross-entropy over the batches of a :class:`FeatureSource`, per-epoch
validation, and the run directory's files after every epoch (see :mod:`esc50.core.rundir`)."""

from __future__ import annotations

import functools
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from esc50.core import checks, rundir
from esc50.core.collate import collate
from esc50.core.allocator import keep_freed_memory
from esc50.core.augment import AugmentationPipeline
from esc50.core.checkpoint import load_checkpoint, load_model_weights
from esc50.core.classifier import build_classifier, load_classifier
from esc50.core.config import TaskConfig, save_config
from esc50.core.contracts import Randomness
from esc50.core.datapath import resolve_data_dir
from esc50.core.dataset import find_clips, leftovers
from esc50.core.distributed import Distributed
from esc50.core.errors import Esc50Error
from esc50.core.evaluate import evaluate_classifier
from esc50.core.features import FeatureSource, SetupMemo
from esc50.core.loggers import HISTORY_LOGGER, Loggers, RunStart
from esc50.core.registry import Registry, convert_options, parse_spec
from esc50.core.schedule import MovingAverage, lr_factor
from esc50.core.split import Split, dataset_digests, make_split


SYNC_EVERY = 20  # steps between reads of the running loss from the device


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
    device = torch.device(name)  # one of cpu, cuda, cuda:N (TaskConfig.validated checks)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Esc50Error(f"device {name!r} was asked for but CUDA is not available here")
    return device


def plugin_versions(config: TaskConfig, registry: Registry) -> dict[str, dict[str, str]]:
    """The id, package and version of every plugin a config uses, by the spec it gives; an
    unknown id or a bad option in a spec fails here, before anything is read."""
    specs = [("dataset", config.dataset), ("model", config.model),
             ("featurizer", config.featurizer)]
    specs += [("augmentation", s) for s in config.augs]
    used = {}
    for kind, spec in specs:
        plugin_id, options = parse_spec(spec)
        component = registry.resolve(kind, plugin_id)
        convert_options(component, options)
        used[spec] = {"kind": kind, "id": component.id, "package": component.package,
                      "version": component.version}
    return used


def parameter_groups(model: nn.Module, learning_rate: float) -> list[dict]:
    """The optimizer's parameter groups: the model's own ``parameter_groups()`` ((parameters,
    learning-rate factor) pairs: a pre-trained backbone learns slower than its new head) where
    it has one, else one group; frozen parameters (``requires_grad`` false) are left out."""
    groups = (model.parameter_groups() if hasattr(model, "parameter_groups")
              else [(list(model.parameters()), 1.0)])
    return [{"params": [p for p in params if p.requires_grad], "lr": learning_rate * factor}
            for params, factor in groups]


class Trainer:
    """One training run, set up from a config and the plugin registry. Plugins are built before
    any audio is decoded, so a bad id or option fails at once.

    ``recorded_split`` is a resumed run's split (the data is checked against it; the model's
    one-time set-up from ``weights`` is skipped: its checkpoint holds the weights). A fresh run
    makes its split from the config.

    Under torchrun each process trains on its shard of every epoch's draw with its share of the
    batch, gradients are averaged by DistributedDataParallel, metrics are summed over processes,
    and rank 0 alone writes the run directory and prints."""

    def __init__(self, config: TaskConfig, registry: Registry,
                 log: Callable[[str], None] = print, recorded_split: Split | None = None,
                 allow_changed_data: bool = False, memo: SetupMemo | None = None) -> None:
        config = config.validated()
        seed_everything(config.seed)
        device = pick_device(config.device)
        self.dist = Distributed.from_environment(device)
        self.device = self.dist.device(device)
        self.log = log if self.dist.is_main else (lambda _: None)
        fresh = recorded_split is None
        self.plugins = plugin_versions(config, registry)  # an unknown id fails before any I/O
        keep_freed_memory()  # every step allocates the same large buffers again
        self.registry = registry
        self.loggers = Loggers({spec: registry.create("logger", spec, config)
                                for spec in [HISTORY_LOGGER, *config.loggers]}
                               if self.dist.is_main else {}, self.log)
        # The dataset first (cheap: names and metadata): it decides the classes, the sample rate
        # and the clip length; its audio is decoded only after every plugin is built.
        table = find_clips(resolve_data_dir(config.data), config, registry)
        for line in leftovers(table):
            self.log(f"warning: {line}")
        self.class_names = table.class_names
        config = self.config = config.for_dataset(table.class_names, table.sample_rate,
                                                  table.clip_seconds)
        self.classifier = build_classifier(config, registry, fresh=fresh).to(self.device)
        self.model = self.classifier.model
        if config.weights and fresh:
            load_model_weights(self.model, Path(config.weights))
        self.train_model = (DistributedDataParallel(self.model) if self.dist.enabled
                            else self.model)  # the model as training steps call it
        if config.compile:
            self.train_model = torch.compile(self.train_model)
        self.aug_by_spec = {s: registry.create("augmentation", s, config).to(self.device)
                            for s in config.augs}
        self.augs = AugmentationPipeline(list(self.aug_by_spec.values()), config.aug_policy)
        for aug in self.augs:
            aug.attach(self.classifier.featurizer)
        self.params = sum(p.numel() for p in self.model.parameters())

        digests = dataset_digests(table)
        if fresh:
            self.split = make_split(table, config, digests)
        else:
            self.split = recorded_split
            self.split.check_data(table, digests, allow_changed_data, self.log)
        self.data = FeatureSource(config, self.classifier, self.augs, table, self.split,
                                  list(digests.values()), self.device, self.dist, self.log,
                                  memo)

        self.optimizer = torch.optim.Adam(parameter_groups(self.model, config.learning_rate),
                                          lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
        steps_per_epoch = len(self.data.train_loader)
        self.scheduler = (torch.optim.lr_scheduler.LambdaLR(self.optimizer, functools.partial(
            lr_factor, warmup_steps=round(config.warmup_epochs * steps_per_epoch),
            total_steps=config.num_epochs * steps_per_epoch, cosine=config.scheduler == "cosine"))
            if config.scheduler == "cosine" or config.warmup_epochs else None)
        self.ema = (MovingAverage(self.model, config.ema_decay) if config.ema_decay
                    else None)
        # Each process its own augmentation streams: bulk noise on the training device, the
        # per-example draws on the host (choosing clips never waits for the GPU).
        self.aug_generator = torch.Generator(device=self.device).manual_seed(
            config.seed + 1 + self.dist.rank)
        self.draw_generator = (torch.Generator().manual_seed(config.seed + 1 + self.dist.rank)
                               if self.device.type != "cpu" else self.aug_generator)
        self.randomness = Randomness(self.draw_generator, self.aug_generator)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.val_loss_fn = nn.CrossEntropyLoss()
        self.use_amp = config.amp and self.device.type == "cuda"
        self._setup_pass()
        self.run_dir: Path | None = None  # set by fit(), or by resume() to the run it continues
        self.history: list[dict[str, float]] = []
        self.augmented: dict[str, dict[str, int]] = {}  # per augmentation, in the last epoch

    @classmethod
    def resume(cls, run_dir: Path, registry: Registry, data: str | None = None,
               epochs: int | None = None, allow_changed_data: bool = False,
               log: Callable[[str], None] = print, memo: SetupMemo | None = None) -> Trainer:
        """A trainer that continues the run in ``run_dir`` from its last checkpoint: model,
        optimizer, scheduler, normalization, sampler and random-number states, epoch, history,
        on the run's recorded split. ``epochs`` extends the run (its learning-rate schedule is
        then stretched over the new length from here on)."""
        path = run_dir / rundir.CHECKPOINTS["last"]
        if not path.is_file():
            raise Esc50Error(f"cannot resume {run_dir}: no last.pt (no epoch finished); start the "
                             "run again")
        state = load_checkpoint(path)
        if "split" not in state:
            raise Esc50Error(f"cannot resume {run_dir}: its checkpoint records no split (written "
                             "by an older esc50); start the run again")
        registry.check_recorded(state["plugins"], log)
        config = TaskConfig().override(**state["config"])
        done = len(state["history"])
        if data:
            config = config.override(data=data)
        extended = epochs is not None and epochs != config.num_epochs
        if extended:
            if epochs < done:
                raise Esc50Error(f"--epochs {epochs}: {run_dir} has already trained {done} epochs")
            config = config.override(num_epochs=epochs)
        trainer = cls(config, registry, log, Split.from_dict(state["split"]), allow_changed_data,
                      memo)
        if extended:
            log(f"extending {run_dir} from {state['config']['num_epochs']} to {epochs} epochs: "
                "the learning-rate schedule is stretched from here on, so the run differs from a "
                f"fresh {epochs}-epoch run")
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
        trainer.data.sampler_generator.set_state(rng["sampler"])
        if len(rng["augment"]) != trainer.dist.world_size:
            raise Esc50Error(f"{run_dir} was trained by {len(rng['augment'])} process(es); resume "
                             f"it with as many, not {trainer.dist.world_size}")
        trainer.aug_generator.set_state(rng["augment"][trainer.dist.rank])
        if "draws" in rng:  # (checkpoints from before the host draws have none)
            trainer.draw_generator.set_state(rng["draws"][trainer.dist.rank])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        trainer.run_dir, trainer.history = run_dir, state["history"]
        trainer.augmented = state["augmented"]
        if trainer.dist.is_main:  # a kill after last.pt was written leaves these an epoch behind
            rundir.remove_partial_files(run_dir)
            save_config(config, run_dir / "config.toml")
            rundir.write_metrics(run_dir, trainer.history, trainer._metrics())
        log(f"resuming {run_dir} after epoch {done}")
        return trainer

    def _setup_pass(self) -> None:
        """Two training clips through every plugin, each output checked against its contract
        (:func:`esc50.core.checks.setup_pass`), before the run makes its folder."""
        audio = self.data.train_audio
        batch = collate([audio[i] for i in range(min(2, len(audio)))])
        names = {spec: checks.who(info) for spec, info in self.plugins.items()}
        checks.setup_pass(self.classifier, self.aug_by_spec, names, self.config, batch,
                          self.device)

    def fit(self) -> Path:
        """Train until ``num_epochs`` (continuing a resumed run); return the run directory.
        Ctrl-C stops with a message saying how to resume from the last finished epoch."""
        fresh = self.run_dir is None
        run_dir = self.run_dir = self.run_dir or self._shared_run_dir()
        lock = (rundir.locked(run_dir, "use another --run-name") if self.dist.is_main
                else nullcontext())
        try:
            with lock:
                self._train(run_dir)
        except BaseException:
            if fresh and not self.history and self.dist.is_main:  # nothing worth keeping
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        self.dist.barrier()
        return run_dir

    def _train(self, run_dir: Path) -> None:
        history = self.history
        self.log(f"training {self.config.model} ({self.params:,} parameters) on {self.device} "
                 f"for {self.config.num_epochs} epochs; run directory {run_dir}")
        best = max((row["val_accuracy"] for row in history), default=-1.0)
        self.loggers.emit("start", RunStart(run_dir, self.config, self.class_names,
                                            list(history)))
        for epoch in range(len(history) + 1, self.config.num_epochs + 1):
            started = time.perf_counter()
            for aug in self.augs:
                aug.reset_counts()
            try:
                train = self._run_epoch(epoch, training=True)
                val = self._run_epoch(epoch, training=False)
            except KeyboardInterrupt:
                if not history:
                    raise Esc50Error(f"interrupted in epoch {epoch} before any epoch finished: "
                                     f"nothing was kept ({run_dir} is removed)") from None
                raise Esc50Error(f"interrupted in epoch {epoch}; last.pt holds epoch "
                                 f"{epoch - 1}: continue with `esc50 train --resume {run_dir}`"
                                 ) from None
            self.augmented = {spec: aug.counts() for spec, aug in self.aug_by_spec.items()}
            history.append({
                "epoch": epoch, "train_loss": train.loss, "train_accuracy": train.accuracy,
                "val_loss": val.loss, "val_accuracy": val.accuracy,
                "lr": self.optimizer.param_groups[0]["lr"],
                "steps": (history[-1]["steps"] if history else 0) + train.steps,
                "seconds": time.perf_counter() - started})
            self.log(f"epoch {epoch}/{self.config.num_epochs}: train loss {train.loss:.3f} "
                     f"acc {train.accuracy:.3f} | val loss {val.loss:.3f} acc {val.accuracy:.3f} "
                     f"| {history[-1]['seconds']:.1f} s")
            state = self.state_dict(epoch)
            if self.dist.is_main:
                best_state = self._best_state(state) if val.accuracy > best else None
                try:
                    curves = rundir.save_epoch(
                        run_dir, state, best_state, self._metrics(),
                        f"{run_dir.name} ({self.config.model})",
                        draw_curves=rundir.curves_due(epoch, self.config.num_epochs))
                except KeyboardInterrupt:  # the writes are atomic: the last complete epoch holds
                    raise Esc50Error(f"interrupted while saving epoch {epoch}; continue with "
                                     f"`esc50 train --resume {run_dir}`") from None
                self.loggers.emit("epoch", history[-1])
                if curves is not None:
                    self.loggers.emit("figure", "learning_curves", curves, epoch)
            best = max(best, val.accuracy)
        self.loggers.finish(len(history), {**self._metrics(), **rundir.headline(history)},
                            self.config.sample_rate, lambda: evaluate_classifier(
                                *load_classifier(run_dir, self.registry, warn=self.log),
                                self.registry, warn=self.log))

    @property
    def evaluated_model(self) -> nn.Module:
        """The weights validation scores and the run reports: the moving average when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def close(self) -> None:
        """Leave the process group after training under torchrun. The DistributedDataParallel
        wrapper goes first: destroyed after the group, it was seen to hang its process."""
        self.train_model = self.model
        self.dist.close()

    def _shared_run_dir(self) -> Path:
        """Rank 0 makes the run directory; every process learns its path (or rank 0's error)."""
        made: Path | Esc50Error | None = None
        if self.dist.is_main:
            name = self.config.run_name or (f"{datetime.now():%Y%m%d-%H%M%S}-"
                                            f"{self.config.model.split(':')[0].split('.')[-1]}")
            try:
                made = rundir.create(Path(self.config.output_dir), name, self.config,
                                     self.split.to_dict())
            except Esc50Error as exc:
                made = exc
        made = self.dist.from_main(made)
        if isinstance(made, Esc50Error):
            raise made
        return made

    def _run_epoch(self, epoch: int, training: bool) -> EpochStats:
        """One pass over the training or validation batches. Loss and accuracy are summed on the
        training device and read back (a GPU sync) only every ``SYNC_EVERY`` steps, for the
        progress bar and the finiteness check, and at the end."""
        model = self.train_model if training else self.evaluated_model
        model.train(training)
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        seen = 0
        desc = f"epoch {epoch} {'train' if training else 'val'}"
        loss_fn = self.loss_fn if training else self.val_loss_fn
        steps = len(self.data.loader(training))
        bar = tqdm(self.data.batches(training, self.randomness), total=steps, desc=desc,
                   leave=False, disable=not (self.config.progress and self.dist.is_main))
        for step, (features, frame_lengths, targets) in enumerate(bar, start=1):
            with torch.set_grad_enabled(training), torch.autocast(
                    self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                logits = model(features, frame_lengths)
                loss = loss_fn(logits.float(), targets)
            finite &= torch.isfinite(loss)
            if step % SYNC_EVERY == 0 or step == steps:
                if not finite:
                    raise Esc50Error(f"{desc}: the loss became {loss.item()} (by step {step}); "
                                     "lower --lr or check the data")
                bar.set_postfix(loss=f"{float(total_loss) / max(seen, 1):.3f}",
                                acc=f"{int(correct) / max(seen, 1):.3f}")
            if training:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
            labels = targets.argmax(1) if targets.dim() == 2 else targets
            total_loss += loss.detach().double() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum()
            seen += len(labels)
            if training and (step % SYNC_EVERY == 0 or step == steps) and \
                    self.loggers.want("step"):  # where the loss is read back anyway
                done = self.history[-1]["steps"] if self.history else 0
                self.loggers.emit("step", done + step, {
                    "train_loss": float(total_loss) / seen,
                    "lr": self.optimizer.param_groups[0]["lr"]})
        total_loss, correct, seen = self.dist.sum([float(total_loss), int(correct), seen],
                                                  self.device)
        return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1),
                          steps if training else 0)

    def state_dict(self, epoch: int) -> dict[str, Any]:
        """Everything a resumed run needs (last.pt), with what prediction needs."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "normalizer": (self.classifier.normalizer.state_dict()
                               if self.classifier.normalizer is not None else None),
                "rng": {"torch": torch.get_rng_state(),
                        "sampler": self.data.sampler_generator.get_state(),
                        "augment": self.dist.gather(self.aug_generator.get_state()),
                        "draws": self.dist.gather(self.draw_generator.get_state()),
                        "cuda": (torch.cuda.get_rng_state_all()
                                 if self.device.type == "cuda" else None)},
                "epoch": epoch, "config": self.config.to_dict(), "class_names": self.class_names,
                "plugins": self.plugins, "history": self.history, "split": self.split.to_dict(),
                "augmented": self.augmented}

    def _best_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """best.pt: the validated weights and what prediction needs; no optimizer or RNG state."""
        kept = {k: v for k, v in state.items()
                if k not in ("optimizer", "scheduler", "rng", "ema", "augmented")}
        return {**kept, "model": self.evaluated_model.state_dict()}

    def _metrics(self) -> dict[str, Any]:
        """What metrics.json says of the run besides its per-epoch figures."""
        return {"model": self.config.model, "parameters": self.params, "device": str(self.device),
                "weights": "moving average (ema_decay)" if self.ema is not None else "final",
                "split": self.split.description, "train_clips": len(self.data.train_set),
                "val_clips": len(self.data.val_set), "plugins": self.plugins,
                "augmented_in_last_epoch": self.augmented}
