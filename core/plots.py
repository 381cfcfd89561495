"""Figures: learning curves of a run and a confusion matrix with class names, written as PNG
files or shown inline in a notebook. Built on matplotlib's object API (no pyplot), so nothing
global changes in the process and no display is needed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from esc50.core.files import atomic_write


class PlotFigure(Figure):
    """A figure that Jupyter shows inline (as a PNG) when a cell returns it."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=100, format="png")
    return buffer.getvalue()


def plot_learning_curves(history: list[dict[str, float]], title: str, path: Path) -> None:
    """Write :func:`learning_curves` to a PNG file."""
    save(learning_curves(history, title), path)


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str], title: str,
                          path: Path) -> None:
    """Write :func:`confusion_figure` to a PNG file."""
    save(confusion_figure(matrix, class_names, title), path)


def save(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG atomically (a crash or a full disk leaves the previous file)."""
    data = png_bytes(figure)
    atomic_write(path, lambda handle: handle.write(data))


def learning_curves(history: list[dict[str, float]], title: str) -> Figure:
    """Train/validation loss and accuracy per epoch, side by side (like the report's figures)."""
    epochs = [row["epoch"] for row in history]
    figure = PlotFigure(figsize=(10, 4))
    loss, accuracy = figure.subplots(1, 2)
    for axis, key, label in ((loss, "loss", "loss"), (accuracy, "accuracy", "accuracy")):
        axis.plot(epochs, [row[f"train_{key}"] for row in history], marker="o", label="train")
        axis.plot(epochs, [row[f"val_{key}"] for row in history], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str) -> Figure:
    """Row-normalised confusion matrix (true class per row) with class names on both axes."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(6.0, 0.22 * len(class_names))
    figure = PlotFigure(figsize=(size, size))
    axis = figure.subplots()
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    axis.set_yticks(ticks, class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    figure.tight_layout()
    return figure
