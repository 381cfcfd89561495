"""Options that several commands share: a config file, flags and --set overrides, the
checkpoint to use, and accepting changed data."""

from __future__ import annotations

from typing import Any, Callable

import click

from esc50.core.config import setting_value
from esc50.core.errors import Esc50Error

COUNT = click.IntRange(min=1)  # an option counting things (workers, classes, trials): 1 or more

# Flags for the most used TaskConfig keys; every other key goes through --set KEY=VALUE.
TRAIN_FLAGS = {
    "dataset": "dataset plugin id[:options], e.g. plugins.folder (default plugins.esc50)",
    "model": "model plugin id, e.g. plugins.crnn",
    "featurizer": "featurizer plugin id, e.g. plugins.logmel",
    "aug_policy": "all: each augmentation with its own p; one-of: one per clip (the report's)",
    "data": "dataset folder (default: $ESC50_DATA, else the download cache)",
    "epochs": "number of epochs (num_epochs)",
    "batch_size": "batch size",
    "lr": "learning rate",
    "split": "fold (official folds), random (grouped train_ratio split), auto (fold when "
             "the dataset has folds, else random; the default) or all (every clip trains, "
             "none is held out: a final model)",
    "val_fold": "validation fold for --split fold",
    "seed": "random seed",
    "device": "auto, cpu, cuda or cuda:N",
    "output_dir": "where run directories go",
    "run_name": "name of the run directory",
}
FLAG_TO_KEY = {"epochs": "num_epochs", "lr": "learning_rate"}


def train_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `train` and `cv` share: a config file, flags and --set overrides."""
    options = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False),
                     help="TOML or YAML file of TaskConfig keys."),
        click.option("--recipe", help="a built-in recipe of TaskConfig keys, e.g. strong "
                     "(esc50/recipes/NAME.toml); flags and --set override it."),
        click.option("--dataset", help=TRAIN_FLAGS["dataset"]),
        click.option("--model", help=TRAIN_FLAGS["model"]),
        click.option("--featurizer", help=TRAIN_FLAGS["featurizer"]),
        click.option("--aug", "augs", multiple=True,
                     help="augmentation id[:key=value,...]; repeat for several."),
        click.option("--logger", "loggers", multiple=True,
                     help="logger id[:key=value,...], e.g. tensorboard; repeat for several "
                     "(history.csv is always written)."),
        click.option("--aug-policy", type=click.Choice(["all", "one-of"]),
                     help=TRAIN_FLAGS["aug_policy"]),
        click.option("--data", help=TRAIN_FLAGS["data"]),
        click.option("--epochs", type=int, help=TRAIN_FLAGS["epochs"]),
        click.option("--batch-size", type=int, help=TRAIN_FLAGS["batch_size"]),
        click.option("--lr", type=float, help=TRAIN_FLAGS["lr"]),
        click.option("--seed", type=int, help=TRAIN_FLAGS["seed"]),
        click.option("--device", help=TRAIN_FLAGS["device"]),
        click.option("--output-dir", help=TRAIN_FLAGS["output_dir"]),
        click.option("--weights", help="start the model from this state dict or esc50 checkpoint."),
        click.option("--pretrained", is_flag=True, default=None,
                     help="start from pre-trained weights (the model's `pretrained` option: "
                     "plugins.vgg19)."),
        click.option("--skip-bad-files", is_flag=True, default=None,
                     help="leave out unreadable or silent clips with a warning instead of "
                     "stopping."),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                     help="any other TaskConfig key or plugin option, e.g. --set "
                     "label_smoothing=0.1 or --set plugins.logmel.n_mels=128; repeatable."),
        click.option("--no-progress", is_flag=True, help="no progress bars (for logs)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def config_arguments(config_file: str | None, augs: tuple[str, ...], settings: tuple[str, ...],
                     no_progress: bool, flags: dict[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`esc50.commands.api.config` that flags, --set and files give."""
    recipe = flags.pop("recipe", None)
    overrides = {FLAG_TO_KEY.get(k, k): v for k, v in flags.items() if v not in (None, ())}
    if augs:
        overrides["augs"] = list(augs)
    if no_progress:
        overrides["progress"] = False
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise Esc50Error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = setting_value(key.strip(), value)  # typed, as a flag's value
    return {"config_file": config_file, "recipe": recipe, **overrides}


ALLOW_CHANGED_DATA = click.option(
    "--allow-changed-data", is_flag=True,
    help="accept a dataset that changed since the run was trained: use the run's recorded split "
    "of the clips still there, saying what changed.")
CHECKPOINT_CHOICE = click.option(
    "--checkpoint", "which", type=click.Choice(["last", "best"]), default="last",
    show_default=True, help="last: the final epoch (what runs report); best: the epoch chosen "
    "on the validation clips (optimistic on them).")
# What `train --resume` accepts besides the run: everything else would change the run.
RESUME_FLAGS = {"data", "epochs"}
