"""Figures: learning curves of a run and a confusion matrix with class names, written as PNG
files or shown inline in a notebook. Built on matplotlib's object API (no pyplot), so nothing
global changes in the process and no display is needed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from esc50.core.errors import Esc50Error
from esc50.core.files.write import atomic_write


class PlotFigure(Figure):
    """A figure that Jupyter shows inline (as a PNG) when a cell returns it."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


# The formats a figure is written in, by the file name's suffix.
FIGURE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg"}


def png_bytes(figure: Figure, fmt: str = "png") -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=100, format=fmt)
    return buffer.getvalue()


def figure_format(path: Path, option: str = "plot") -> str:
    """The format a figure file's name asks for (PNG, SVG, PDF or JPEG); another suffix is a
    one-line error naming the option, before anything is computed."""
    fmt = FIGURE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise Esc50Error(f"{option} {path}: a figure is written as "
                         f"{', '.join(FIGURE_FORMATS)}; {path.suffix or 'no suffix'} is none of "
                         "them")
    return fmt


def plot_learning_curves(history: list[dict[str, float]], title: str, path: Path) -> None:
    """Write :func:`learning_curves` to a PNG file."""
    save(learning_curves(history, title), path)


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str], title: str,
                          path: Path) -> None:
    """Write :func:`confusion_figure` to a PNG file."""
    save(confusion_figure(matrix, class_names, title), path)


def save(figure: Figure, path: Path) -> None:
    """Write ``figure`` in the format its name asks for (:func:`figure_format`) atomically (a
    crash or a full disk leaves the previous file)."""
    data = png_bytes(figure, figure_format(path))
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


def spectrogram_figure(wav: np.ndarray, sample_rate: int, title: str) -> Figure:
    """A clip's mel spectrogram in dB (64 bands, 23 ms hops at 44.1 kHz), for looking at it."""
    import torch
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=1024, hop_length=256,
                                               n_mels=64)(torch.as_tensor(wav, dtype=torch.float32))
    db = 10 * torch.log10(mel.clamp(min=1e-10))
    figure = PlotFigure(figsize=(4, 1.8))
    axis = figure.subplots()
    axis.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma",
                vmin=float(db.max()) - 80, extent=(0, len(wav) / sample_rate, 0, 64))
    axis.set_xlabel("seconds", fontsize=7)
    axis.set_ylabel("mel band", fontsize=7)
    axis.tick_params(labelsize=6)
    axis.set_title(title, fontsize=8)
    figure.tight_layout()
    return figure


def svg_text(figure: Figure) -> str:
    """The figure as an inline SVG element (no XML header)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def timeline_figure(probabilities: np.ndarray, class_names: list[str],
                    spans: list[tuple[float, float]], duration: float, title: str,
                    rows: int | None = None) -> Figure:
    """What sounds when: time on x, a row per class, each window's probability of that class
    as colour over the time the window speaks for (between the midpoints to its neighbours'
    centres). The rows: every class that is the top class of at least one window (``rows``:
    the ``rows`` classes that lead the most windows, then the most probable anywhere), so no
    window's answer is left off. Readable for hours of audio: the time axis is in h:mm:ss."""
    leads = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    shown = int((leads > 0).sum()) if rows is None else rows
    order = np.lexsort((-probabilities.max(axis=0), -leads))[:min(shown, len(class_names))]
    centres = np.array([(a + b) / 2 for a, b in spans])
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [duration]])
    figure = PlotFigure(figsize=(12, 1.2 + 0.35 * len(order)))
    axis = figure.subplots()
    mesh = axis.pcolormesh(edges, np.arange(len(order) + 1), probabilities[:, order].T,
                           cmap="magma", vmin=0.0, vmax=1.0, shading="flat")
    axis.set_yticks(np.arange(len(order)) + 0.5, [class_names[i] for i in order])
    axis.invert_yaxis()
    axis.set_xlim(0, duration)
    axis.xaxis.set_major_formatter(FuncFormatter(
        lambda t, _: clock(t, tenths=False, hours=duration >= 3600)))
    axis.set_xlabel("time (h:mm:ss)" if duration >= 3600 else "time (m:ss)")
    axis.set_title(title, fontsize=10)
    figure.colorbar(mesh, ax=axis, label="probability", pad=0.01)
    figure.tight_layout()
    return figure


def clock(seconds: float, tenths: bool = True, hours: bool | None = None) -> str:
    """``seconds`` as m:ss.s, or h:mm:ss.s from an hour on (``hours`` forces either way);
    whole seconds without ``tenths``."""
    units = round(seconds * 10) if tenths else round(seconds)
    per_second = 10 if tenths else 1
    hour, rest = divmod(units, 3600 * per_second)
    minute, rest = divmod(rest, 60 * per_second)
    second = f"{rest // 10:02d}.{rest % 10}" if tenths else f"{rest:02d}"
    if hours if hours is not None else hour > 0:
        return f"{hour}:{minute:02d}:{second}"
    return f"{minute}:{second}"
