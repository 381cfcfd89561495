"""TensorBoard event files in the run folder (``tensorboard --logdir runs``): the running
training loss and learning rate every few steps, losses, accuracies and learning rate per epoch,
the final confusion matrix as a figure, the worst-classified validation clips as audio with
their true and predicted classes, and the run's config and metrics as text.

Written with ``torch.utils.tensorboard``, which needs the ``tensorboard`` package (``pip install
'esc50[tensorboard]'``); without it the logger refuses in one line before the run starts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from esc50 import Esc50Error, Logger, RunStart, hookimpl

if TYPE_CHECKING:  # a figure comes drawn; the listing need not import matplotlib
    from matplotlib.figure import Figure

ESC50_PLUGIN_API = 4


class TensorBoard(Logger):
    """TensorBoard scalars, confusion matrix, worst-classified clips as audio, config, metrics."""

    name = "tensorboard"

    def __init__(self, log_dir: str = "") -> None:
        """Options:
        log_dir: folder of the event files ("": tensorboard/ in the run folder)
        """
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise Esc50Error("plugins.tensorboard needs the tensorboard package: pip install "
                             "'esc50[tensorboard]'") from None
        self.make_writer, self.log_dir = SummaryWriter, log_dir
        self.writer: Any = None

    def start(self, run: RunStart) -> None:
        self.writer = self.make_writer(self.log_dir or str(Path(run.run_dir) / "tensorboard"))
        self.writer.add_text("config", "```\n" + json.dumps(run.config.to_dict(), indent=2)
                             + "\n```")

    def step(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"step/{key}", value, step)

    def epoch(self, row: dict[str, float]) -> None:
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
            if math.isfinite(row[key]):  # a run that holds no clips out has no val_* figures
                self.writer.add_scalar(f"epoch/{key}", row[key], int(row["epoch"]))
        self.writer.flush()

    def figure(self, name: str, figure: Figure, epoch: int) -> None:
        if name != "learning_curves":  # the epoch scalars already draw those
            self.writer.add_figure(name, figure, epoch, close=False)

    def audio(self, name: str, wav: np.ndarray, sample_rate: int, caption: str) -> None:
        self.writer.add_audio(name, torch.from_numpy(np.asarray(wav, dtype=np.float32))[None],
                              sample_rate=sample_rate)
        self.writer.add_text(name, caption)

    def end(self, metrics: dict[str, Any]) -> None:
        self.writer.add_text("metrics", "```\n" + json.dumps(metrics, indent=2, default=str)
                             + "\n```")
        self.writer.close()


@hookimpl
def register_loggers(register):
    register(TensorBoard)
