"""Plugins as a package written for plugin API 3 had them: an augmentation that expects its
per-example draws on the training device, and a logger."""

import json

import torch

from esc50.core.config import TaskConfig
from esc50.core.contracts import Augmentation, uniform
from esc50.core.hookspecs import hookimpl
from esc50.core.loggers import Logger

ESC50_PLUGIN_API = 3


class Shift(Augmentation):
    """Add a constant drawn from [-1, 1] to the features of the chosen examples."""

    name = "shift"
    stage = "features"

    def __init__(self, config: TaskConfig, p: float = 0.5) -> None:
        super().__init__(p)

    def sample(self, batch_size, generator):
        return {"offset": uniform(-1.0, 1.0, batch_size, generator)}

    def apply(self, x, chosen, params, generator):
        assert params["offset"].device == x.device  # what API 3 promised
        return x + (params["offset"] * chosen)[:, None, None, None]


class Epochs(Logger):
    """Write each epoch's row to epochs.jsonl in the run folder."""

    name = "epochs"

    def __init__(self, config: TaskConfig) -> None:
        self.path = None

    def start(self, run):
        self.path = run.run_dir / "epochs.jsonl"

    def epoch(self, row):
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


@hookimpl
def register_augmentations(register):
    register(Shift)


@hookimpl
def register_loggers(register):
    register(Epochs)
