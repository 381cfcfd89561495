"""PNG figures: learning curves of a run and a confusion matrix with class names."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curves(history: list[dict[str, float]], title: str, path: Path) -> None:
    """Train/validation loss and accuracy per epoch, side by side (like the report's figures)."""
    epochs = [row["epoch"] for row in history]
    figure, (loss, accuracy) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, label in ((loss, "loss", "loss"), (accuracy, "accuracy", "accuracy")):
        axis.plot(epochs, [row[f"train_{key}"] for row in history], marker="o", label="train")
        axis.plot(epochs, [row[f"val_{key}"] for row in history], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str], title: str,
                          path: Path) -> None:
    """Row-normalised confusion matrix (true class per row) with class names on both axes."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(6.0, 0.22 * len(class_names))
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    axis.set_yticks(ticks, class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.colorbar(image, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
