"""Minutes each recipe takes to pass 50 %, 70 % and 80 % on ESC-50's fold 1 (trained on folds
2-5), side by side in one run on one machine, with each run's final-epoch accuracy and minutes.

    python benchmarks/time_to_accuracy.py --data ../shared/datasets/esc50 [--only laptop quick]

The clock of a run starts when it starts being built (reading the dataset, decoding and
featurizing included) and ticks through each epoch's training and validation (the few
milliseconds of writing its checkpoint aside); a threshold is passed at the end
of the first epoch whose validation accuracy reaches it (the moving average's, for recipes that
keep one). That is a speed measure; the accuracy a run reports is its final epoch's, the last
column. Recipes, each at its own budget:
- laptop: ``esc50 train --recipe laptop`` (80 epochs);
- quick: the README's first command (``--recipe quick``: the laptop recipe's network and
  features for 22 epochs, lightly regularized);
- report-crnn-noise: the report's CRNN with ``--aug noise`` at the report's 10 epochs;
- report-kumar: Kumar's CNN with the report's defaults, 10 epochs.
Nothing is shared between runs (each decodes its own audio), so each time is what a user sees.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time

from esc50.commands.api import config as make_config
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer

RECIPES = {
    "laptop": dict(recipe="laptop"),
    "quick": dict(recipe="quick"),
    "report-crnn-noise": dict(model="plugins.crnn", augs=["noise"], num_epochs=10),
    "report-kumar": dict(model="plugins.kumar", num_epochs=10),
}
THRESHOLDS = (0.5, 0.7, 0.8)


def minutes_to(history: list[dict], started: float, ends: list[float], threshold: float) -> str:
    for row, end in zip(history, ends):
        if row["val_accuracy"] >= threshold:
            return f"{(end - started) / 60:.1f}"
    return "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--only", nargs="*", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    registry = load_registry()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for name in args.only:
            recipe = dict(RECIPES[name])
            started = time.perf_counter()
            config = make_config(recipe=recipe.pop("recipe", None), data=args.data, split="fold",
                                 val_fold=1, device=args.device, output_dir=out, run_name=name,
                                 progress=False, **recipe)
            trainer = Trainer(config, registry, log=lambda line: print(f"{name}: {line}",
                                                                    flush=True))
            ready = time.perf_counter()  # dataset read, audio decoded, features computed
            trainer.fit()
            history = trainer.state.history
            ends = list(itertools.accumulate((row["seconds"] for row in history),
                                             initial=ready))[1:]
            total = (ends[-1] - started) / 60
            cells = [minutes_to(history, started, ends, t) for t in THRESHOLDS]
            rows.append(f"| {name} | {config.model} | {config.num_epochs} | "
                        f"{' | '.join(cells)} | {history[-1]['val_accuracy']:.1%} | "
                        f"{total:.1f} |")
            print(f"row: {rows[-1]}", flush=True)
    print(f"\nfold 1 (trained on folds 2-5), device {trainer.device}; minutes from the start of "
          "each run\n")
    print("| recipe | model | epochs | min to 50 % | min to 70 % | min to 80 % | final epoch "
          "accuracy | minutes in all |\n|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
