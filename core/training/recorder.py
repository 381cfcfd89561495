"""Writing a run's folder while it trains (:mod:`esc50.core.results.folder` holds the files'
formats): making the folder, each epoch's checkpoints, metrics and curves, and passing the
run's events to its loggers. Under torchrun rank 0 alone writes and logs; every process learns
the folder's path (or rank 0's error)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from esc50.core.config import TaskConfig, save_config
from esc50.core.errors import Esc50Error
from esc50.core.results import folder
from esc50.core.plugins.registry import Registry, RunPlugins
from esc50.core.results.loggers import HISTORY_LOGGER, Loggers
from esc50.core.training.distributed import Distributed

RESUME_ONLY = ("optimizer", "scheduler", "rng", "ema", "augmented")  # not in best.pt


class RunRecorder:
    """The run folder of one run and its loggers (the history logger, which writes
    history.csv, and the config's; on rank 0 only)."""

    def __init__(self, config: TaskConfig, dist: Distributed, registry: Registry,
                 plugins: RunPlugins, log: Callable[[str], None]) -> None:
        self.config, self.dist = config, dist
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

    def continue_in(self, run_dir: Path, history: list[dict[str, float]],
                    metrics: dict[str, Any]) -> None:
        """Before a resumed run's next epoch: files a kill left an epoch behind are rewritten."""
        if self.dist.is_main:
            folder.remove_partial_files(run_dir)
            save_config(self.config, run_dir / "config.toml")
            if history:
                folder.write_metrics(run_dir, history, metrics)

    def save_epoch(self, run_dir: Path, epoch: int, checkpoint: dict[str, Any],
                   scored_weights: dict[str, Any] | None, metrics: dict[str, Any]) -> None:
        """last.pt (and best.pt with ``scored_weights`` when this epoch is the best so far:
        what prediction needs, nothing to resume), metrics, curves; then the loggers."""
        if not self.dist.is_main:
            return
        best = None
        if scored_weights is not None:
            best = {k: v for k, v in checkpoint.items() if k not in RESUME_ONLY}
            best["model"] = scored_weights
        try:
            curves = folder.save_epoch(run_dir, checkpoint, best, metrics,
                                       f"{run_dir.name} ({self.config.model})",
                                       draw_curves=folder.curves_due(epoch,
                                                                     self.config.num_epochs))
        except KeyboardInterrupt:  # the writes are atomic: the last complete epoch holds
            raise Esc50Error(f"interrupted while saving epoch {epoch}; continue with "
                             f"`esc50 train --resume {run_dir}`") from None
        self.loggers.emit("epoch", checkpoint["history"][-1])
        if curves is not None:
            self.loggers.emit("figure", "learning_curves", curves, epoch)
