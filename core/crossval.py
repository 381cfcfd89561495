"""Cross-validation over the folds present: one model per held-out fold, trained from scratch,
resumable fold by fold (a fold interrupted after an epoch continues from its last checkpoint).
Each fold is scored at its final epoch, so no fold's held-out accuracy chooses anything."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Callable

from esc50.core.checkpoint import atomic_write
from esc50.core.config import TaskConfig
from esc50.core.datapath import resolve_data_dir
from esc50.core.dataset import find_clips
from esc50.core.errors import Esc50Error
from esc50.core.registry import Registry
from esc50.core.trainer import Trainer


def cross_validate(config: TaskConfig, registry: Registry, name: str,
                   folds: list[int] | None = None, log: Callable[[str], None] = print) -> dict:
    """Train one run per fold under ``<output_dir>/<name>/fold-<k>``; a fold whose run finished
    earlier is not trained again. Returns per-fold and mean +- std final-epoch accuracy."""
    present = sorted(set(find_clips(resolve_data_dir(config.data), config).folds))
    folds = folds or present
    missing = [k for k in folds if k not in present]
    if missing:
        raise Esc50Error(f"fold(s) {', '.join(map(str, missing))} have no clips (folds present: "
                         f"{', '.join(map(str, present))})")
    root = Path(config.output_dir) / name
    results = {}
    for fold in folds:
        run_dir = root / f"fold-{fold}"
        metrics_file = run_dir / "metrics.json"
        if metrics_file.is_file() and json.loads(metrics_file.read_text())["epochs"] == \
                config.num_epochs:
            log(f"fold {fold}: already trained in {run_dir}, skipping")
        elif (run_dir / "last.pt").is_file():  # interrupted after an epoch: continue it
            log(f"fold {fold}: resuming {run_dir}")
            Trainer.resume(run_dir, registry, config.data, log=log).fit()
        else:
            shutil.rmtree(run_dir, ignore_errors=True)  # killed before its first epoch ended
            log(f"fold {fold}: training with fold {fold} held out")
            fold_config = config.override(split="fold", val_fold=fold, output_dir=str(root),
                                          run_name=f"fold-{fold}")
            Trainer(fold_config, registry, log=log).fit()
        metrics = json.loads(metrics_file.read_text())
        results[fold] = metrics["final_val_accuracy"]
        log(f"fold {fold}: accuracy {results[fold]:.3f} ({metrics['val_clips']} clips)")
    accuracies = list(results.values())
    summary = {"model": config.model, "epochs": config.num_epochs,
               "folds": {str(k): v for k, v in results.items()},
               "mean_accuracy": statistics.fmean(accuracies),
               "std_accuracy": statistics.pstdev(accuracies)}
    atomic_write(root / "cv.json", lambda h: h.write(json.dumps(summary, indent=2).encode()))
    return summary
