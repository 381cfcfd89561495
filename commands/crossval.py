"""Cross-validation over the folds present: one model per held-out fold, trained from scratch,
resumable fold by fold (a fold interrupted after an epoch continues from its last checkpoint).

Each fold is scored at its final epoch, so no fold's held-out accuracy chooses anything. A fold
found on disk is reused only when it was trained with the same settings: each fold's run records
its config, and a re-run with any other setting (model, learning rate, epochs, ...) is refused
with the keys that differ. The spread over folds is the sample standard deviation (n - 1). The folds share the clips'
decoded audio and, where no waveform augmentation runs, their features: each is computed once."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import statistics
from pathlib import Path
from typing import Any, Callable

import torch

from esc50.commands.workers import ended, received, start_worker
from esc50.core.results import folder as rundir
from esc50.core.config import TaskConfig, load_config
from esc50.core.files.digest import values_sha256
from esc50.core.files.write import StorageError, output_folder, plain_name, write_text
from esc50.core.results.card import CARD, cv_card, data_facts, invocation
from esc50.core.errors import Esc50Error
from esc50.core.data.audiocache import AudioCache
from esc50.core.files.cache import cache_dir
from esc50.core.training.batches import ExperimentData
from esc50.core.training.memory import memory_shares, share_memory
from esc50.core.plugin_api.registry import Registry, load_registry
from esc50.core.training.resume import resume
from esc50.core.training.trainer import Trainer

# Keys that may differ between the folds of one experiment: the held-out fold, where files go,
# where the data is read from (its content is checked against each fold's recorded split) and
# what only changes speed or output (loggers never change a result).
PER_FOLD_KEYS = {"val_fold", "output_dir", "run_name", "data", "progress", "num_workers",
                 "audio_cache", "loggers", "accumulate"}  # accumulate: planned from memory


def experiment_settings(config: TaskConfig) -> dict[str, Any]:
    """The settings every fold of one cross-validation shares."""
    return {k: v for k, v in config.to_dict().items() if k not in PER_FOLD_KEYS}


def config_digest(config: TaskConfig) -> str:
    return values_sha256(experiment_settings(config))


def same_experiment(summary: dict[str, Any], fold_config: TaskConfig) -> bool:
    """Whether a fold run's config belongs to the cross-validation ``summary`` (its cv.json)
    describes. The summary's digest is of the command's config, whose split is "auto" or
    "fold" (each fold run records "fold")."""
    return any(config_digest(fold_config.override(split=split)) == summary["config_digest"]
               for split in ("auto", "fold"))


def read_summary(folder: Path) -> dict[str, Any]:
    """The ``cv.json`` of a finished cross-validation, checked: folds and their accuracies,
    the mean and the config digest; anything else is a one-line error naming the file."""
    path = folder / "cv.json"
    if not path.is_file():
        raise Esc50Error(f"{folder} holds fold runs but no cv.json: the cross-validation has "
                         "not finished (run the same esc50 cv command again), so its models "
                         "are not used together")
    try:
        summary = json.loads(path.read_text())
        folds = {int(k): rundir.checked_accuracy(v, path) for k, v in summary["folds"].items()}
        rundir.checked_accuracy(summary["mean_accuracy"], path)
        if not isinstance(summary["config_digest"], str) or not folds:
            raise ValueError("no folds or no config digest")
    except Esc50Error:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Esc50Error(f"{path} is damaged ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:120]}): not the summary esc50 cv "
                         "writes; run the cross-validation again to rewrite it") from None
    return summary


def cross_validate(config: TaskConfig, registry: Registry, name: str,
                   folds: list[int] | None = None, allow_changed_data: bool = False,
                   log: Callable[[str], None] = print, jobs: int = 1) -> dict:
    """Train one run per fold under ``<output_dir>/<name>/fold-<k>``; a fold whose run finished
    earlier with the same settings is not trained again. Returns per-fold and mean +- std
    final-epoch accuracy (also written to ``cv.json``). ``jobs`` > 1 trains that many folds at
    once, each in a process of its own (see :func:`parallel_folds`)."""
    if jobs < 1:
        raise Esc50Error(f"--jobs {jobs} must be at least 1")
    config = registry.typed_options(config)  # compared with the folds' recorded configs
    # the folds share the clip table and digests (read once here), decoded audio and features
    shared = ExperimentData()
    table = shared.read_clips(config, registry)
    if not table.has_folds:
        raise Esc50Error(f"dataset {config.dataset} in {table.root} has no folds: give it k "
                         "grouped, stratified folds with --k K (e.g. --k 5)")
    present = sorted(set(table.folds) - set(config.ignore_folds))
    # Fold runs record their config with what the dataset decides filled in; compare like with
    # like, so a re-run with the same settings finds its folds.
    config = config.for_dataset(table.class_names, table.sample_rate, table.clip_seconds)
    folds = folds or present
    missing = [k for k in folds if k not in present]
    if missing:
        raise Esc50Error(f"fold(s) {', '.join(map(str, missing))} have no clips (folds present: "
                         f"{', '.join(map(str, present))})")
    root = Path(config.output_dir) / plain_name(name, "--name", Path(config.output_dir))
    output_folder(root, "cross-validation folder")
    with rundir.locked(root, "use another --name"):
        if jobs == 1 or len(folds) == 1:
            results = {fold: _run_fold(config, registry, root, fold, allow_changed_data, log,
                                       shared) for fold in folds}
        else:
            results = parallel_folds(config, root, folds, allow_changed_data, log, shared, jobs)
    accuracies = list(results.values())
    summary = {"model": config.model, "epochs": config.num_epochs,
               "folds": {str(k): v for k, v in results.items()},
               "mean_accuracy": statistics.fmean(accuracies),
               "std_accuracy": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
               "std": "sample standard deviation (n - 1) over folds",
               "scored": "each fold's final epoch (last.pt)",
               "config_digest": config_digest(config)}
    rundir.write_json(root / "cv.json", summary)
    used = [c for c in table.clips if c.fold in present]
    write_text(root / CARD, cv_card(config, summary, data_facts(table, len(used)), invocation(),
                                    root))
    return summary


def _run_fold(config: TaskConfig, registry: Registry, root: Path, fold: int,
              allow_changed_data: bool, log: Callable[[str], None], shared: ExperimentData) -> float:
    """Train, resume or reuse the run of one held-out fold; its final-epoch accuracy."""
    run_dir = root / f"fold-{fold}"
    fold_config = config.override(split="fold", val_fold=fold, output_dir=str(root),
                                  run_name=f"fold-{fold}")
    if (run_dir / "last.pt").is_file():
        _check_same_settings(run_dir, fold_config)
        metrics = rundir.read_metrics(run_dir) if (run_dir / "metrics.json").is_file() else {}
        if metrics.get("epochs") == config.num_epochs:
            log(f"fold {fold}: already trained in {run_dir}, skipping")
        else:  # interrupted after an epoch: continue it
            log(f"fold {fold}: resuming {run_dir}")
            resume(run_dir, registry, config.data, allow_changed_data=allow_changed_data, log=log,
                   shared=shared).fit()
    else:
        shutil.rmtree(run_dir, ignore_errors=True)  # killed before its first epoch ended
        log(f"fold {fold}: training with fold {fold} held out")
        Trainer(fold_config, registry, log=log, shared=shared).fit()
    metrics = rundir.read_metrics(run_dir)
    log(f"fold {fold}: accuracy {metrics['final_val_accuracy']:.3f} ({metrics['val_clips']} "
        "clips, final epoch)")
    return metrics["final_val_accuracy"]


def _check_same_settings(run_dir: Path, config: TaskConfig) -> None:
    """Refuse a fold run trained with other settings than ``config``, naming the keys."""
    recorded = experiment_settings(load_config(run_dir / "config.toml"))
    wanted = experiment_settings(config)
    if recorded == wanted:
        return
    differing = ", ".join(f"{k}: {recorded.get(k)!r} there, {wanted.get(k)!r} now"
                          for k in sorted(set(recorded) | set(wanted))
                          if recorded.get(k) != wanted.get(k))
    raise Esc50Error(f"{run_dir} was trained with other settings ({differing}); use another "
                     "--name, or delete that folder to train it again")


def parallel_folds(config: TaskConfig, root: Path, folds: list[int], allow_changed_data: bool,
                   log: Callable[[str], None], shared: ExperimentData, jobs: int
                   ) -> dict[int, float]:
    """Train ``jobs`` folds at a time, each in a process of its own (one GPU shared, or the CPU
    cores split between them), every fold resumable and config-checked as in one process.

    The decoded audio is shared through the on-disk audio cache (``audio_cache``, by default a
    folder in esc50's cache folder): this process decodes it once before any fold starts, and
    every fold maps it. Each fold's lines come back through a pipe of its own, prefixed
    ``[fold k]``; a fold that fails is reported with its error while the others go on (but where
    it could not store its files, a full disk, no fold starts after it), and one killed at any
    moment (halfway through a line included) with how it ended; the call then fails naming it
    (the finished folds stay on disk; running the same command again trains what is missing)."""
    side_by_side = min(jobs, len(folds))
    threads = max(1, (os.cpu_count() or 1) // side_by_side)
    shares = memory_shares() * side_by_side  # each fold's memory planned within its share
    if not config.audio_cache:
        config = config.override(audio_cache=str(cache_dir() / "audio"))
        log(f"decoded audio shared between the folds through {config.audio_cache}")
    AudioCache(shared.table.clips, config, skip_bad=config.skip_bad_files, warn=log,
               digests=list(shared.digests.values()))  # decoded here once, mapped by each fold
    context = multiprocessing.get_context("spawn")  # no torch state forked into the folds
    waiting, running, pipes, results, failed = list(folds), {}, {}, {}, {}
    while waiting or running:
        while waiting and len(running) < jobs:
            fold = waiting.pop(0)
            running[fold], pipes[fold] = start_worker(
                context, _fold_process, config.to_dict(), root, fold, allow_changed_data,
                shared.table, shared.digests, threads, shares)
        for fold, message in received(pipes):
            if message and message[0] == "log":
                log(f"[fold {fold}] {message[1]}")
                continue
            process = running.pop(fold)
            process.join()
            pipes.pop(fold).close()
            kind, text = message or ("lost", f"its process {ended(process.exitcode)}")
            if kind == "done":
                results[fold] = float(text)
                continue
            failed[fold] = text
            log(f"[fold {fold}] failed: {text}")
            if kind == "storage":  # no fold starts that would fail the same way
                waiting.clear()
    if failed:
        done = ", ".join(f"fold {k}: {v:.3f}" for k, v in sorted(results.items())) or "none"
        reasons = "; ".join(f"fold {k}: {v}" for k, v in sorted(failed.items()))
        raise Esc50Error(f"{len(failed)} fold(s) failed ({reasons}); finished: {done}. Run the "
                         "same command again to train the missing folds")
    return {fold: results[fold] for fold in folds}


def _fold_process(values: dict[str, Any], root: Path, fold: int, allow_changed_data: bool,
                  table: Any, digests: dict[str, str], threads: int, shares: int,
                  pipe: Any) -> None:
    """One fold in a process of its own, its memory planned within one of ``shares`` shares
    (:func:`share_memory`): its lines and its result (or its one-line error) go back through
    ``pipe`` as ("log" | "done" | "error" | "storage", text)."""
    torch.set_num_threads(threads)
    share_memory(shares)
    try:
        config = TaskConfig().override(**{**values, "progress": False})
        accuracy = _run_fold(config, load_registry(), root, fold, allow_changed_data,
                             lambda line: pipe.send(("log", line)),
                             ExperimentData(table, digests))
    except StorageError as exc:  # a full disk: the folds waiting would fail the same way
        pipe.send(("storage", str(exc)))
    except Esc50Error as exc:
        pipe.send(("error", str(exc)))
    except Exception as exc:  # a bug: name it on one line, keep the other folds going
        pipe.send(("error", f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
    else:
        pipe.send(("done", repr(accuracy)))
