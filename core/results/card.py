"""``MODEL_CARD.md``: what a trained model is, what it was trained and scored on, how well it
did, what it cost and what it is not for, written into every run folder with its metrics (and
into a cross-validation's folder, for its fold models together).

Sources of each choice: the sections follow Mitchell et al., "Model Cards for Model Reporting"
(FAT* 2019), cut to what a run knows: model details, intended use and limits, training and
evaluation data (with the data's licence, which the weights may inherit), metrics with the
worst classes, and how to reproduce it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from esc50.core.config import TaskConfig
from esc50.core.plugin_api.contracts import ClipTable

CARD = "MODEL_CARD.md"
WORST_CLASSES = 5
NO_LICENCE = ("not stated by the dataset plugin: check the licence of your recordings before "
              "sharing the model")


def invocation() -> str | None:
    """The esc50 command line this process was started with (None from the Python API)."""
    if Path(sys.argv[0]).name != "esc50":
        return None
    return shlex.join(["esc50", *sys.argv[1:]])


def licence_lines(licence: str | None) -> list[str]:
    return [f"- **Licence of the data**: {licence or NO_LICENCE}.",
            "  The weights were learned from this data: check what its licence means for "
            "using and sharing them (a non-commercial licence may rule out commercial use "
            "of the model)."]


def limits(config: TaskConfig, classes: int) -> list[str]:
    seconds = config.length_wav / config.sample_rate
    return [
        f"- Trained on {seconds:g}-second clips of {classes} classes at {config.sample_rate} Hz; "
        "a sound outside these classes still gets one of them (there is no \"none of these\").",
        "- Longer recordings are scored in windows of that length (`esc50 predict --timeline`);"
        " accuracy on recordings unlike the training clips (other microphones, distances, "
        "background noise) is not measured here.",
        "- Not for safety-critical use (alarms, health, surveillance decisions about people).",
    ]


def results_lines(metrics: dict[str, Any], report: dict[str, Any] | None) -> list[str]:
    """The card's results: the final epoch's accuracy and worst classes on the held-out clips,
    or, for a run that held none out, that it has no accuracy of its own."""
    if report is None:
        return ["- **Accuracy**: none of its own: every clip trained the model (split=all). A "
                "cross-validation of the same settings (`esc50 cv --config config.toml`) "
                "estimates it on unseen clips."]
    worst = sorted((row for row in report["per_class"] if row["support"]),
                   key=lambda row: (row["recall"], row["class"]))[:WORST_CLASSES]
    return [f"- **Accuracy on the validation clips**: {metrics['final_val_accuracy']:.1%} "
            f"(final epoch; macro F1 {report['macro_f1']:.3f}).",
            "- **Worst classes** (recall): " + ", ".join(
                f"{row['class']} {row['recall']:.0%}" for row in worst) + "."]


def run_card(config: TaskConfig, metrics: dict[str, Any], report: dict[str, Any] | None,
             data: dict[str, Any], command: str | None, run_dir: Path) -> str:
    """The card of one run: ``metrics`` as metrics.json holds them, ``report`` the final
    evaluation of its validation clips (per-class figures; None when it held none out),
    ``data`` the dataset's name, folder, classes, clips and licence."""
    minutes = metrics["seconds_per_epoch"] * metrics["epochs"] / 60
    lines = [
        f"# Model card: {run_dir.name}", "",
        "## Model",
        f"- **Model**: `{config.model}` on `{config.featurizer}` features, "
        f"{metrics['parameters']:,} parameters ({metrics['parameters'] * 4 / 2**20:.1f} MiB "
        "in float32); weights reported: " + metrics["weights"] + f", epoch {metrics['epochs']}"
        " (`last.pt`).",
        f"- **Input**: mono audio at {config.sample_rate} Hz, "
        f"{config.length_wav / config.sample_rate:g}-second windows; **output**: probabilities "
        f"of {data['classes']} classes.", "",
        "## Data",
        f"- **Dataset**: `{config.dataset}` in `{data['root']}`: {data['clips']} clips used "
        f"({metrics['train_clips']} training, {metrics['val_clips']} validation), "
        f"{data['classes']} classes.",
        *licence_lines(data["licence"]),
        f"- **Split**: {metrics['split']}. Settings were not chosen on the validation clips by "
        "this run; the accuracy below is the final epoch's.", "",
        "## Results", *results_lines(metrics, report), "",
        "## Compute",
        f"- {metrics['epochs']} epochs on {metrics['device']}, {minutes:.1f} minutes of "
        f"training ({metrics['seconds_per_epoch']:.1f} s an epoch).", "",
        "## Reproduce",
        *([f"- Command: `{command}`"] if command else []),
        f"- Exactly this config: `esc50 train --config {run_dir / 'config.toml'} "
        "--run-name NEW_NAME` (the config holds every setting, the seed included).", "",
        "## Limits", *limits(config, data["classes"]), "",
    ]
    return "\n".join(lines)


def cv_card(config: TaskConfig, summary: dict[str, Any], data: dict[str, Any],
            command: str | None, root: Path) -> str:
    """The card of a cross-validation: its fold models, each scored on its held-out fold."""
    folds = ", ".join(f"fold {k}: {v:.1%}" for k, v in summary["folds"].items())
    spread = (f" +- {summary['std_accuracy']:.1%} (sample standard deviation over folds)"
              if summary["std_accuracy"] is not None else "")
    lines = [
        f"# Model card: {root.name} (cross-validation)", "",
        "## Models",
        f"- {len(summary['folds'])} models of `{config.model}`, one per held-out fold, in "
        f"`{root}/fold-*` (each with its own card). `esc50 predict {root} FILE` uses them "
        "together as an ensemble (probabilities averaged); between them they trained on every "
        "fold listed below, so the ensemble has no held-out figure of its own unless a fold was "
        "left out of the cross-validation.", "",
        "## Data",
        f"- **Dataset**: `{config.dataset}` in `{data['root']}`: {data['clips']} clips, "
        f"{data['classes']} classes.",
        *licence_lines(data["licence"]), "",
        "## Results",
        f"- **Accuracy**: {summary['mean_accuracy']:.1%}{spread} over {len(summary['folds'])} "
        f"folds, each model on the fold it never trained on, at its final epoch ({folds}).", "",
        "## Reproduce",
        *([f"- Command: `{command}`"] if command else []),
        f"- Exactly these settings: `esc50 cv --config {root}/fold-{next(iter(summary['folds']))}"
        "/config.toml --name NEW_NAME` (each fold's config differs only in its held-out "
        "fold).", "",
        "## Limits", *limits(config, data["classes"]), "",
    ]
    return "\n".join(lines)


def data_facts(table: ClipTable, clips: int) -> dict[str, Any]:
    """What a card says of the data: its folder, classes, the clips used and its licence."""
    return {"root": str(table.root), "classes": len(table.class_names), "clips": clips,
            "licence": table.licence}
