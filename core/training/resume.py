"""Continuing a run from its folder: the run is built again from its recorded config and split,
then its training state (weights, optimizer, schedule, moving average, random generators,
history) is loaded from ``last.pt``, so the next epoch is the one an uninterrupted run would
have trained."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from esc50.core.config import TaskConfig
from esc50.core.data.split import Split
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import Registry
from esc50.core.results import folder
from esc50.core.training.batches import ExperimentData
from esc50.core.training.trainer import Trainer


def resume(run_dir: Path, registry: Registry, data: str | None = None, epochs: int | None = None,
           allow_changed_data: bool = False, log: Callable[[str], None] = print,
           shared: ExperimentData | None = None) -> Trainer:
    """The run in ``run_dir``, ready to :meth:`Trainer.fit` from its next epoch (a run stopped
    before its first epoch ended starts again in place). ``data`` points to the dataset where
    it moved; ``epochs`` extends the run (the schedule stretched from here on)."""
    checkpoint, values, split = folder.recorded_run(run_dir)
    if checkpoint is not None:
        registry.check_recorded(checkpoint["plugins"], log)
    config = TaskConfig().override(**{**values, **({"data": data} if data else {})})
    done, recorded_epochs = len(checkpoint["history"]) if checkpoint else 0, config.num_epochs
    if epochs is not None and epochs < done:
        raise Esc50Error(f"--epochs {epochs}: {run_dir} has already trained {done} epochs")
    config = config.override(num_epochs=epochs or recorded_epochs)
    trainer = Trainer(config, registry, log, Split.from_dict(split), allow_changed_data, shared,
                      restoring=checkpoint is not None)
    if done and config.num_epochs != recorded_epochs:
        log(f"extending {run_dir} from {recorded_epochs} to {epochs} epochs: the learning-rate "
            f"schedule is stretched from here on, so the run differs from a fresh {epochs}-"
            "epoch run")
    if checkpoint is not None:
        trainer.state.load_state_dict(checkpoint, trainer.dist)
        if checkpoint["normalizer"] is not None:
            trainer.classifier.normalizer.load_state_dict(checkpoint["normalizer"])
    trainer.run_dir = run_dir
    trainer.recorder.continue_in(run_dir, trainer.state)
    log(f"resuming {run_dir} after epoch {done}" if done else
        f"no epoch of {run_dir} had finished: training it again in place from epoch 1")
    return trainer
