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


def checkpoint_path(path: Path, which: str = "last") -> Path:
    """``path`` when it is a checkpoint file, else the run directory's ``last.pt`` (the final
    epoch: reported) or ``best.pt`` (chosen on validation)."""
    if which not in CHECKPOINTS:
        raise Esc50Error(f"--checkpoint {which!r} must be one of {', '.join(CHECKPOINTS)}")
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


def remove_partial_files(run_dir: Path) -> None:
    """Temporary files a killed write left behind (``.last.pt.*.tmp``)."""
    for leftover in run_dir.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


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


def headline(history: list[dict[str, float]]) -> dict[str, Any]:
    """The figures a run reports: the final epoch's, with the best epoch labelled as chosen on
    the validation clips."""
    best = max(history, key=lambda row: row["val_accuracy"])
    return {"epochs": len(history), "final_val_accuracy": history[-1]["val_accuracy"],
            "reported_checkpoint": CHECKPOINTS["last"],
            "seconds_per_epoch": sum(r["seconds"] for r in history) / len(history),
            "selected_on_validation": {"checkpoint": CHECKPOINTS["best"], "epoch": best["epoch"],
                                       "val_accuracy": best["val_accuracy"], "note": BEST_NOTE}}
