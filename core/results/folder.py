"""A run directory: the files of one training run, and which checkpoint its figures come from.

- ``config.toml``: the run's exact config; ``split.json``: its training and validation clips.
- ``history.csv``, ``metrics.json``, ``curves.png``: figures per epoch and the run's headline.
- ``last.pt``: everything needed to resume. Its weights (the moving average when ``ema_decay`` is
  on) are the **reported** ones: the headline accuracy, ``evaluate``, ``predict``, ``report`` and
  ``cv`` use the final epoch, so no validation clip chooses what is scored on it.
- ``best.pt``: the weights of the epoch with the highest validation accuracy. That epoch was
  chosen on the validation clips, so its accuracy on them is optimistic; commands use it only when
  asked (``--checkpoint best``).

One process at a time writes a run directory: :func:`locked` holds an advisory lock on its
``.lock`` file, released when the process ends, however it ends.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from esc50.core.results.checkpoint import load_checkpoint, save_checkpoint
from esc50.core.files.write import atomic_write, output_folder, plain_name
from esc50.core.config import TaskConfig, load_config, save_config
from esc50.core.errors import Esc50Error

CHECKPOINTS = {"last": "last.pt", "best": "best.pt"}  # "last" is the reported checkpoint
HISTORY_FIELDS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                  "steps", "seconds"]
BEST_NOTE = ("best.pt holds the epoch with the highest accuracy on these validation clips; it was "
             "chosen on them, so that accuracy is optimistic and never reported")


# The files that make a run folder, a cross-validation folder or a packaged model what it is:
# a command writing a file a user names (an export, a plot, an analysis) never replaces one.
RUN_FILES = {"config.toml", "split.json", "history.csv", "metrics.json", "curves.png",
             "MODEL_CARD.md", "cv.json", ".lock", "model.pt", "LICENSE", "ATTRIBUTION.txt",
             *CHECKPOINTS.values()}


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` is a run folder, a cross-validation folder or a packaged model."""
    return any((folder / name).is_file() for name in ("config.toml", "cv.json", "model.pt",
                                                      *CHECKPOINTS.values()))


def refuse_run_file(path: Path, option: str) -> Path:
    """``path`` as an output a user named with ``option``, unless writing it would replace a
    file of a run, cross-validation or packaged-model folder (``last.pt``, ``split.json``, a
    checksum file, ...): then a one-line error, before anything is written."""
    name = path.name.removesuffix(".sha256")
    if name in RUN_FILES and is_model_folder(path.parent):
        raise Esc50Error(f"{option} {path} would replace {path.name}, a file of the folder "
                         f"{path.parent} (a trained model's own files are never written over): "
                         "choose another name or folder")
    return path


def checked_which(which: str) -> str:
    """``which`` once it names a run's checkpoint ("last" or "best")."""
    if which not in CHECKPOINTS:
        raise Esc50Error(f"--checkpoint {which!r} must be one of {', '.join(CHECKPOINTS)}")
    return which


def checkpoint_path(path: Path, which: str = "last") -> Path:
    """``path`` when it is a checkpoint file, else the run directory's ``last.pt`` (the final
    epoch: reported) or ``best.pt`` (chosen on validation)."""
    which = checked_which(which)
    path = path / CHECKPOINTS[which] if path.is_dir() else path
    if not path.is_file():
        raise Esc50Error(f"checkpoint {path} does not exist")
    return path


def create(output_dir: Path, name: str, config: TaskConfig, split: dict[str, Any]) -> Path:
    """Make a new run directory ``output_dir/name`` holding ``config.toml`` and ``split.json``."""
    run_dir = output_folder(output_dir, "--output-dir") / plain_name(name, "run name",
                                                                       output_dir)
    try:
        run_dir.mkdir(exist_ok=False)
    except FileExistsError:
        raise Esc50Error(f"run directory {run_dir} already exists: choose another --run-name "
                         "or continue it with --resume") from None
    except OSError as exc:
        raise Esc50Error(f"cannot create run directory {run_dir}: {exc.strerror}") from None
    save_config(config, run_dir / "config.toml")
    write_json(run_dir / "split.json", split)
    return run_dir


@contextmanager
def locked(folder: Path, hint: str) -> Iterator[None]:
    """Hold the write lock of ``folder``; another process holding it is a one-line error
    (``hint`` says what to do instead)."""
    handle = (folder / ".lock").open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise Esc50Error(f"{folder} is being written by another esc50 process (pid {owner}); "
                             f"wait for it to finish or {hint}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def checked_accuracy(value: Any, path: Path) -> float:
    """An accuracy read from ``path``: a finite number in [0, 1]; else a one-line error naming
    the file (a damaged file must not become a figure: 7.5 was once reported as 390.6 %)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise Esc50Error(f"{path} is damaged: it holds the accuracy {value!r}, not a number "
                         "between 0 and 1 (train or cross-validate again to rewrite it)")
    return float(value)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A finished run's ``metrics.json``, checked: a JSON object whose ``final_val_accuracy``
    is an accuracy (:func:`checked_accuracy`), or None for a run that held no clips out. Every
    other content is one line naming the file."""
    path = run_dir / "metrics.json"
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise Esc50Error(f"{run_dir} has no metrics.json: not a finished run (continue it with "
                         f"esc50 train --resume {run_dir})") from None
    except (OSError, ValueError) as exc:
        raise Esc50Error(f"{path} is damaged ({' '.join(str(exc).split())[:100] or 'empty'}): "
                         "not the metrics esc50 writes") from None
    if not isinstance(values, dict):
        raise Esc50Error(f"{path} is damaged: it holds a JSON {type(values).__name__}, not the "
                         "object esc50 writes")
    if "final_val_accuracy" not in values:
        raise Esc50Error(f"{path} is damaged: it lacks final_val_accuracy")
    if values["final_val_accuracy"] is not None:
        checked_accuracy(values["final_val_accuracy"], path)
    return values


def write_json(path: Path, values: Any) -> None:
    atomic_write(path, lambda handle: handle.write(json.dumps(values, indent=2).encode()))


def save_epoch(run_dir: Path, state: dict[str, Any], best_state: dict[str, Any] | None,
               metrics: dict[str, Any]) -> None:
    """After an epoch: ``last.pt``, ``best.pt`` (when ``best_state`` is given: the epoch is the
    best so far) and the metrics (``history.csv`` is the history logger's, ``curves.png`` the
    recorder's)."""
    # best.pt first: a kill between the two leaves last.pt at the previous epoch, which the
    # resumed run trains again, so the files an epoch promises are never missing.
    if best_state is not None:
        save_checkpoint(best_state, run_dir / CHECKPOINTS["best"])
    save_checkpoint(state, run_dir / CHECKPOINTS["last"])
    write_metrics(run_dir, state["history"], metrics)


def recorded_run(run_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any]]:
    """What a run folder holds to continue from: its last checkpoint (None when no epoch
    finished: the run was stopped in its first), its config and its split (the checkpoint's,
    else ``config.toml``'s and ``split.json``'s)."""
    if not run_dir.is_dir():
        raise Esc50Error(f"cannot resume {run_dir}: no such run folder")
    path = run_dir / CHECKPOINTS["last"]
    if path.is_file():
        checkpoint = load_checkpoint(path)
        if "split" not in checkpoint:
            raise Esc50Error(f"cannot resume {run_dir}: its checkpoint records no split (written "
                             "by an older esc50); start the run again")
        return checkpoint, checkpoint["config"], checkpoint["split"]
    try:
        config = load_config(run_dir / "config.toml").to_dict()
        split = json.loads((run_dir / "split.json").read_text())
    except (Esc50Error, OSError, ValueError):
        raise Esc50Error(f"cannot resume {run_dir}: it holds no last.pt, config.toml and "
                         "split.json (not a run folder esc50 made); start a new run") from None
    return None, config, split


def curves_due(epoch: int, num_epochs: int) -> bool:
    """Whether ``curves.png`` is redrawn after ``epoch``: about ten times a run and after its
    last epoch (drawing takes a third of a second, more than a small model's epoch)."""
    return epoch >= num_epochs or epoch % max(1, num_epochs // 10) == 0


def write_history(run_dir: Path, history: list[dict[str, float]]) -> None:
    """``history.csv``: a row per epoch (written by the built-in history logger)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    atomic_write(run_dir / "history.csv", lambda h: h.write(text.getvalue().encode()))


def write_metrics(run_dir: Path, history: list[dict[str, float]],
                  metrics: dict[str, Any]) -> None:
    """``metrics.json``: ``metrics`` plus the figures drawn from history."""
    write_json(run_dir / "metrics.json", {**metrics, **headline(history)})


def held_out_rows(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """The epochs that were scored on held-out clips (none when the run held none out: its
    rows' validation figures are NaN)."""
    return [row for row in history if not math.isnan(row["val_accuracy"])]


def headline(history: list[dict[str, float]]) -> dict[str, Any]:
    """The figures a run reports: the final epoch's, with the best epoch labelled as chosen on
    the validation clips; ``None`` for both when the run held no clips out."""
    scored = held_out_rows(history)
    best = max(scored, key=lambda row: row["val_accuracy"]) if scored else None
    return {"epochs": len(history),
            "final_val_accuracy": history[-1]["val_accuracy"] if scored else None,
            "reported_checkpoint": CHECKPOINTS["last"],
            "seconds_per_epoch": sum(r["seconds"] for r in history) / len(history),
            "selected_on_validation": None if best is None else {
                "checkpoint": CHECKPOINTS["best"], "epoch": best["epoch"],
                "val_accuracy": best["val_accuracy"], "note": BEST_NOTE}}
