"""Set-up seconds per fold of a 5-fold cross-validation (decoding, featurizing, normalization
statistics, the set-up pass: everything before the first epoch), with the folds sharing decoded
audio and features as `esc50 cv` does, against each fold set up on its own (as five `esc50
train --val-fold K` runs are), in one run.

    python benchmarks/cv_setup.py --data ../shared/datasets/esc50 [--model plugins.crnn] [--aug noise]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from esc50.core.config import TaskConfig
from esc50.core.training.batches import ExperimentData
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer


def setup_seconds(config: TaskConfig, folds: list[int], shared: ExperimentData | None) -> list[float]:
    """Seconds to build each fold's Trainer (nothing trained)."""
    registry, seconds = load_registry(), []
    for fold in folds:
        started = time.perf_counter()
        Trainer(config.override(split="fold", val_fold=fold, run_name=f"fold-{fold}"), registry,
                log=lambda _: None, shared=shared)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="plugins.crnn")
    parser.add_argument("--aug", action="append", default=[])
    args = parser.parse_args()
    folds = [1, 2, 3, 4, 5]
    with tempfile.TemporaryDirectory() as work:
        config = TaskConfig().override(data=args.data, model=args.model, augs=args.aug,
                                       output_dir=work, progress=False)
        rows = {"shared (esc50 cv)": setup_seconds(config, folds, ExperimentData()),
                "each fold on its own": setup_seconds(config, folds, None)}
    print(f"set-up seconds per fold, {args.model}, augs {args.aug or 'none'}\n")
    print("| folds | " + " | ".join(f"fold {k}" for k in folds) + " | all five |")
    print("|---|" + "---:|" * (len(folds) + 1))
    for name, seconds in rows.items():
        print(f"| {name} | " + " | ".join(f"{s:.1f}" for s in seconds) +
              f" | {sum(seconds):.1f} |")


if __name__ == "__main__":
    main()
