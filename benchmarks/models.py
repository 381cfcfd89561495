"""Train each built-in model with the same trainer and budget; print a Markdown table of
parameters, CPU/GPU seconds per epoch and validation accuracy.

    python benchmarks/models.py --data ../shared/datasets/esc50 --epochs 10 --val-fold 1

Accuracy is the final epoch's: no epoch is picked by looking at the validation clips."""

from __future__ import annotations

import argparse
import json
import tempfile

from esc50.core.config import TaskConfig
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer

MODELS = ["baseline", "advanced", "lstm", "crnn", "vgg19", "kumar"]
LEARNING_RATE = {"advanced": 6e-4}  # the report trains its VGG-style model at twice the rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--split", default="fold", choices=["fold", "random"])
    parser.add_argument("--val-fold", type=int, default=1)
    parser.add_argument("--train-ratio", type=float, default=0.9)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--batch-size", type=int, default=TaskConfig.batch_size)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    registry = load_registry()
    rows = []
    header = ("| model | parameters | s / epoch | val acc (final epoch) |\n"
              "|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as out:
        for name in args.models:
            config = TaskConfig().override(
                data=args.data, model=f"plugins.{name}", num_epochs=args.epochs,
                split=args.split, val_fold=args.val_fold, train_ratio=args.train_ratio,
                device=args.device, output_dir=out, run_name=name, progress=False,
                batch_size=args.batch_size,
                learning_rate=LEARNING_RATE.get(name, TaskConfig.learning_rate))
            run_dir = Trainer(config, registry, log=lambda line: print(line, flush=True)).fit()
            metrics = json.loads((run_dir / "metrics.json").read_text())
            rows.append(table_row(name, metrics))
            print(f"row: {rows[-1]}", flush=True)
    print(f"\n{args.epochs} epochs, batch {args.batch_size}, {metrics['split']}, "
          f"{metrics['train_clips']} train / "
          f"{metrics['val_clips']} validation clips, device {metrics['device']}\n")
    print("\n".join([header, *rows]))


def table_row(name: str, m: dict) -> str:
    return (f"| plugins.{name} | {m['parameters']:,} | {m['seconds_per_epoch']:.1f} | "
            f"{m['final_val_accuracy']:.1%} |")


if __name__ == "__main__":
    main()
