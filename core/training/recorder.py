"""Writing a run's folder while it trains (:mod:`esc50.core.results.folder` holds the files'
formats): making the folder, what each epoch's checkpoints and metrics hold, the learning
curves, and passing the run's events to its loggers. Under torchrun rank 0 alone writes and
logs; every process learns the folder's path (or rank 0's error)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from torch import nn

from esc50.core.config import TaskConfig, save_config
from esc50.core.errors import Esc50Error, Interrupted
from esc50.core.plugin_api.choices import RunPlugins
from esc50.core.plugin_api.registry import Registry
from esc50.core.files.write import remove_leftovers, write_text
from esc50.core.results import folder
from esc50.core.results.card import CARD, data_facts, invocation, run_card
from esc50.core.results.loggers import HISTORY_LOGGER, Loggers
from esc50.core.results.plots import learning_curves, save
from esc50.core.training.batches import FeatureSource
from esc50.core.training.distributed import Distributed
from esc50.core.training.scoring import Scoring
from esc50.core.training.state import TrainingState

RESUME_ONLY = ("optimizer", "scheduler", "rng", "ema", "augmented")  # not in best.pt


class RunRecorder:
    """The run folder of one run and its loggers (the history logger, which writes
    history.csv, and the config's; on rank 0 only). ``data``, ``normalizer`` and ``scoring``:
    the run's batches, its fitted feature normalizer and how it scores clips, described in its
    checkpoints and metrics."""

    def __init__(self, config: TaskConfig, dist: Distributed, registry: Registry,
                 plugins: RunPlugins, data: FeatureSource, normalizer: nn.Module | None,
                 scoring: Scoring, log: Callable[[str], None]) -> None:
        self.config, self.dist, self.data, self.normalizer = config, dist, data, normalizer
        self.scoring = scoring
        self.plugins = plugins.recorded()
        choices = [registry.choose("logger", HISTORY_LOGGER, config), *plugins.loggers]
        self.loggers = Loggers({c.spec: c.build(config) for c in choices}
                               if dist.is_main else {}, log)

    def create(self, split: dict[str, Any]) -> Path:
        """A new run folder (``output_dir/run_name``, named by the time and model by default)
        holding ``config.toml`` and ``split.json``."""
        made: Path | Esc50Error | None = None
        if self.dist.is_main:
            name = self.config.run_name or (f"{datetime.now():%Y%m%d-%H%M%S}-"
                                            f"{self.config.model.split(':')[0].split('.')[-1]}")
            try:
                made = folder.create(Path(self.config.output_dir), name, self.config, split)
            except Esc50Error as exc:
                made = exc
        made = self.dist.from_main(made)
        if isinstance(made, Esc50Error):
            raise made
        return made

    def checkpoint(self, state: TrainingState) -> dict[str, Any]:
        """last.pt: the training state, with what prediction needs (collective under torchrun:
        :meth:`TrainingState.state_dict` gathers every process's generators)."""
        return {**state.state_dict(self.dist), "config": self.config.to_dict(),
                "class_names": self.data.table.class_names, "plugins": self.plugins,
                "split": self.data.split.to_dict(), "scoring": self.scoring.to_dict(),
                "normalizer": self.normalizer.state_dict() if self.normalizer else None}

    def metrics(self, state: TrainingState) -> dict[str, Any]:
        """What metrics.json says of the run besides its per-epoch figures."""
        return {"model": self.config.model,
                "parameters": sum(p.numel() for p in state.model.parameters()),
                "device": str(self.data.device),
                "weights": "moving average (ema_decay)" if state.average else "final",
                "split": self.data.split.description, "train_clips": len(self.data.train_set),
                "val_clips": len(self.data.validation), "plugins": self.plugins,
                "augmented_in_last_epoch": state.augmented}

    def continue_in(self, run_dir: Path, state: TrainingState) -> None:
        """Before a resumed run's next epoch: files a kill left an epoch behind are rewritten."""
        if self.dist.is_main:
            remove_leftovers(run_dir)  # of writes killed midway (.last.pt.*.tmp)
            save_config(self.config, run_dir / "config.toml")
            if state.history:
                folder.write_metrics(run_dir, state.history, self.metrics(state))

    def save_epoch(self, run_dir: Path, state: TrainingState, best: bool) -> None:
        """last.pt (and best.pt when ``best``: this epoch is the best so far; what prediction
        needs, nothing to resume), metrics, about ten times a run the curves; then the
        loggers."""
        checkpoint = self.checkpoint(state)  # collective under torchrun: every process takes part
        if not self.dist.is_main:
            return
        epoch, best_state = state.epoch, None
        if best:
            best_state = {k: v for k, v in checkpoint.items() if k not in RESUME_ONLY}
            best_state["model"] = state.scored_model.state_dict()
        curves = None
        try:
            folder.save_epoch(run_dir, checkpoint, best_state, self.metrics(state))
            if folder.curves_due(epoch, self.config.num_epochs):
                curves = learning_curves(state.history, f"{run_dir.name} ({self.config.model})")
                save(curves, run_dir / "curves.png")
        except KeyboardInterrupt:  # the writes are atomic: the last complete epoch holds
            raise Interrupted(f"interrupted while saving epoch {epoch}; continue with "
                             f"`esc50 train --resume {run_dir}`") from None
        self.loggers.emit("epoch", state.history[-1])
        if curves is not None:
            self.loggers.emit("figure", "learning_curves", curves, epoch)

    def write_card(self, run_dir: Path, state: TrainingState,
                   report: dict[str, Any] | None) -> None:
        """``MODEL_CARD.md`` (:mod:`esc50.core.results.card`) from the finished run's metrics
        and its final evaluation ``report`` (None: it held no clips out)."""
        if not self.dist.is_main:
            return
        metrics = {**self.metrics(state), **folder.headline(state.history)}
        clips = len(self.data.train_indices) + len(self.data.val_indices)
        write_text(run_dir / CARD, run_card(self.config, metrics, report,
                                            data_facts(self.data.table, clips), invocation(),
                                            run_dir))
