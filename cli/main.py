"""`esc50` commands: train, cv, tune, evaluate, predict, export, report, list-plugins,
new-plugin, weights, download."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shlex
from pathlib import Path
from typing import Any, Callable

import click

from esc50.cli.analyze import analyze
from esc50.cli.errors import DEBUG_VARIABLE, user_errors
from esc50.core.config import SPLITS
from esc50.core.errors import Esc50Error

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


@click.group()
@click.version_option(package_name="esc50")
@click.option("--traceback", "show_traceback", is_flag=True,
              help=f"print the full traceback of an error (also: {DEBUG_VARIABLE}=1).")
@click.option("--offline", is_flag=True, help="open no network connection: weights named by "
              "name must be in the cache (also: ESC50_OFFLINE=1).")
def cli(show_traceback: bool, offline: bool) -> None:
    """esc50: train, compare and use environmental sound classifiers."""
    if show_traceback:
        os.environ[DEBUG_VARIABLE] = "1"
    if offline:
        os.environ["ESC50_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"  # transformers' hub ids (plugins.ast) too


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
    """The arguments of :func:`esc50.core.commands.api.config` that flags, --set and files give."""
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
        overrides[key.strip()] = value
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


@cli.command()
@train_options
@click.option("--split", type=click.Choice(SPLITS), help=TRAIN_FLAGS["split"])
@click.option("--val-fold", type=int, help=TRAIN_FLAGS["val_fold"])
@click.option("--run-name", help=TRAIN_FLAGS["run_name"])
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="continue an interrupted run from its last checkpoint, with its own config "
              "and split; --data may point to a moved dataset, --epochs extends the run.")
@ALLOW_CHANGED_DATA
@user_errors
def train(config_file: str | None, augs: tuple[str, ...], settings: tuple[str, ...],
          no_progress: bool, resume_dir: str | None, allow_changed_data: bool,
          **flags: Any) -> None:
    """Train a model; writes config, split, checkpoints, history, metrics and curves to a run
    folder. The accuracy it reports is the final epoch's."""
    from esc50.core.commands import api
    from esc50.core.training.distributed import is_main_process

    if resume_dir:
        changing = [f"--{'logger' if k == 'loggers' else k.replace('_', '-')}"
                    for k, v in flags.items() if v not in (None, ()) and k not in RESUME_FLAGS]
        changing += ["--config"] * bool(config_file) + ["--aug"] * bool(augs) + \
            ["--set"] * bool(settings)
        if changing:
            raise Esc50Error(f"--resume continues {resume_dir} with its own config; "
                             f"{', '.join(changing)} would change the run: start a new run "
                             "instead (only --data and --epochs go with --resume)")
        run = api.resume(resume_dir, flags.get("data"), flags.get("epochs"), allow_changed_data,
                         log=click.echo)
    else:
        run = api.train(log=click.echo, **config_arguments(config_file, augs, settings,
                                                           no_progress, flags))
    if not is_main_process():
        return
    metrics = run.metrics
    selected = metrics["selected_on_validation"]
    if selected is None:
        click.echo(f"trained on every clip after {metrics['epochs']} epochs "
                   f"({metrics['weights']} weights; {metrics['split']}); run saved in "
                   f"{run.run_dir}")
    else:
        click.echo(f"final validation accuracy {metrics['final_val_accuracy']:.3f} after "
                   f"{metrics['epochs']} epochs ({metrics['weights']} weights; "
                   f"{metrics['split']}); run saved in {run.run_dir}")
        click.echo(f"(best.pt: epoch {selected['epoch']}, chosen on the same validation clips, "
                   "so its accuracy there is optimistic; commands use last.pt unless told "
                   "--checkpoint best)")
    click.echo(next_steps(run.run_dir))


def next_steps(target: Path) -> str:
    """What to do next with a run (or a cross-validation's fold models, used together) just
    written."""
    run = shlex.quote(str(target))
    return "\n".join([
        "next:",
        f"  esc50 predict {run} recording.wav --timeline   # what sounds when, in a recording "
        "of any length",
        f"  esc50 report {run} --html --out {shlex.quote(str(target / 'report'))}   # curves, "
        "confusions, the worst clips to listen to",
        f"  esc50 export {run} --format onnx   # one file for another device (--quantize int8)",
        f"  model card: {target / 'MODEL_CARD.md'}"])


@cli.command()
@train_options
@click.option("--name", required=True, help="folder under --output-dir for the fold runs.")
@click.option("--folds", help="comma-separated folds to hold out (default: every fold present).")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="folds trained at once, each in its own process (one GPU shared, or the CPU "
              "cores split between them); the decoded audio is shared through the disk cache.")
@click.option("--k", "k_folds", type=int, help="for a dataset without folds (plugins.folder, a "
              "manifest without a fold column): cross-validate over K grouped, stratified folds.")
@ALLOW_CHANGED_DATA
@user_errors
def cv(config_file: str | None, augs: tuple[str, ...], settings: tuple[str, ...],
       no_progress: bool, name: str, folds: str | None, allow_changed_data: bool,
       k_folds: int | None, jobs: int, **flags: Any) -> None:
    """Cross-validation: one model per held-out fold, each scored at its final epoch;
    re-running with the same settings skips finished folds and resumes interrupted ones."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise Esc50Error("esc50 cv runs in one process; under torchrun, train the folds one by "
                         "one with `esc50 train --val-fold N`")
    from esc50.core.commands import api

    try:
        fold_list = [int(f) for f in folds.split(",")] if folds else None
    except ValueError:
        raise Esc50Error(f"--folds {folds!r}: expected comma-separated fold numbers") from None
    result = api.cv(name=name, folds=fold_list, allow_changed_data=allow_changed_data,
                    log=click.echo, jobs=jobs,
                    **config_arguments(config_file, augs, settings, no_progress,
                                       {**flags, "k_folds": k_folds}))
    summary = result.summary
    per_fold = ", ".join(f"fold {k}: {v:.3f}" for k, v in summary["folds"].items())
    spread = (f" +- {summary['std_accuracy']:.3f} ({summary['std']})"
              if summary["std_accuracy"] is not None else "")
    click.echo(f"{per_fold}\nmean accuracy {summary['mean_accuracy']:.3f}{spread} over "
               f"{len(summary['folds'])} folds, each at its final epoch")
    click.echo(next_steps(result.root))


@cli.command()
@train_options
@click.option("--val-fold", type=int, help="the outer fold: left out of every trial (never "
              "read), scored once by --final.")
@click.option("--name", required=True, help="the study: its folder under --output-dir and its "
              "name in the storage.")
@click.option("--space", "spaces", multiple=True, metavar="KEY=low:high[:log] | KEY=a|b|c",
              help="a setting to search (a TaskConfig key or plugin.option); repeatable.")
@click.option("--space-file", type=click.Path(dir_okay=False),
              help="a TOML file whose [space] table gives the settings to search.")
@click.option("--trials", type=int, default=10, show_default=True,
              help="trials this command runs (the study keeps every earlier one).")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="worker processes on this machine sharing the study.")
@click.option("--inner-folds", type=int, default=1, show_default=True,
              help="inner folds each trial is scored on (their mean).")
@click.option("--storage", help="a database URL Optuna accepts (default: a SQLite file in the "
              "study folder); workers on several machines share one study through it.")
@click.option("--show", is_flag=True, help="print the best settings so far and write them as "
              "best.toml (for esc50 train/cv --config).")
@click.option("--final", is_flag=True, help="train once with the best settings and score the "
              "outer fold (only once per study).")
@user_errors
def tune(config_file: str | None, augs: tuple[str, ...], settings: tuple[str, ...],
         no_progress: bool, name: str, spaces: tuple[str, ...], space_file: str | None,
         trials: int, jobs: int, inner_folds: int, storage: str | None, show: bool,
         final: bool, **flags: Any) -> None:
    """Search settings on the training folds only (Optuna; pip install 'esc50[tune]'): the
    outer fold (--val-fold) is left out of every trial and scored once, by --final."""
    from esc50.core.commands import api
    from esc50.core.commands import tune as search

    if show or final:
        root = Path(flags.get("output_dir") or "runs") / name
        found = search.load_search(root, name, storage)
        result = search.final_run(found, click.echo) if final else search.summary(found)
    else:
        result = api.tune(list(spaces), name=name, trials=trials, jobs=jobs,
                          inner_folds=inner_folds, storage=storage, space_file=space_file,
                          log=click.echo, **config_arguments(config_file, augs, settings,
                                                             no_progress, flags))
    best = result["best"]
    click.echo(f"trials: {', '.join(f'{n} {state}' for state, n in result['trials'].items())}")
    if best is None:
        failed = result["trials"].get("fail", 0)
        if failed and not (show or final):
            raise Esc50Error(f"every trial failed ({failed}): see each one's error above")
        click.echo("no trial has finished yet")
        return
    click.echo(f"best: trial {best['trial']}, inner accuracy {best['inner_accuracy']:.3f} on "
               f"fold(s) {', '.join(map(str, best['inner_folds']))} (outer fold "
               f"{best['outer_fold']} untouched by the search): "
               f"{search.shown(best['settings'])}")
    click.echo(f"written to {result['config']}: esc50 train --config {result['config']}")
    if result.get("final"):
        click.echo(f"outer fold {best['outer_fold']} (scored once): "
                   f"{result['final']['accuracy']:.3f} by {result['final']['run']}")


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="report", show_default=True, help="folder for report.md and PNGs.")
@click.option("--html", "as_html", is_flag=True,
              help="also report.html: one self-contained page with the clips to listen to.")
@user_errors
def report(runs: tuple[str, ...], out: str, as_html: bool) -> None:
    """Compare runs: a Markdown table plus learning-curve and confusion-matrix PNGs; with
    --html also one self-contained page to look at and listen to."""
    from esc50.core.commands.api import registry_with_warnings
    from esc50.core.commands.report import write_report

    warn = functools.partial(click.echo, err=True)
    markdown = write_report([Path(r) for r in runs], Path(out), registry_with_warnings(warn),
                            log=lambda line: click.echo(f"note: {line}", err=True),
                            html=as_html)
    click.echo(markdown)
    click.echo(f"written to {Path(out) / 'report.md'}"
               + (f" and {Path(out) / 'report.html'}" if as_html else ""))


@cli.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output.")
@click.option("--verbose", "-v", is_flag=True, help="also show where each plugin comes from.")
@click.option("--options", "show_options", is_flag=True,
              help="each plugin's options: name, type, default.")
@click.option("--strict", is_flag=True, help="exit with status 1 when a plugin is broken.")
@click.option("--refresh", is_flag=True, help="build the listing again instead of reading it "
              "from the cache (it is rebuilt by itself when a plugin package changes).")
@click.option("--wait", is_flag=True, help="wait for every model's parameter count (the first "
              "listing shows a count not ready within a few seconds as '...').")
@user_errors
def list_plugins(as_json: bool, verbose: bool, show_options: bool, strict: bool,
                 refresh: bool, wait: bool) -> None:
    """List every model, augmentation, featurizer, dataset and logger with its package,
    description and options."""
    from esc50.cli.listing import COUNTING, listing, render_options, render_table

    found = listing(refresh, wait)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        rows = found["plugins"]
        click.echo(render_options(rows) if show_options else render_table(rows))
        if found["trained"]:
            click.echo("\ntrained models (esc50 predict NAME FILE; no training needed):")
            for model in found["trained"]:
                click.echo(f"  {model['name']}: {model['description']} [licence: "
                           f"{model['licence']}; from {model['registered_by']}]")
        if verbose:
            click.echo("\nplugin sources:")
            for source in found["sources"]:
                click.echo(f"  {source['namespace']}: {source['module']} from "
                           f"{source['package']} {source['version']}")
        for problem in found["problems"]:
            click.echo(f"broken: {problem}")
        for warning in found["warnings"]:
            click.echo(f"warning: {warning}")
        counting = [r["id"] for r in rows if r.get("parameters") == COUNTING]
        if counting:
            click.echo(f"...: the parameters of {', '.join(counting)} are still being counted "
                       "(in the background, for the next listing; --wait waits for them)",
                       err=True)
    if strict and found["problems"]:
        raise SystemExit(1)


@cli.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False),
              help="where to write the package folder esc50-NAME.")
@user_errors
def new_plugin(name: str, parent: str) -> None:
    """Write a working plugin package to start from: one model, one augmentation, a test."""
    from esc50.cli.skeleton import write_skeleton

    root = write_skeleton(name, Path(parent))
    click.echo(f"wrote {root}: pip install -e {root}, then esc50 list-plugins shows "
               f"{name}.meanpool and {name}.gain; run its test with python -m pytest {root}/tests")


@cli.command()
@click.option("--dest", type=click.Path(file_okay=False), help="folder to unpack into "
              "(default: the esc50 cache folder).")
@click.option("--url", help="archive to fetch (default: the official ESC-50 release).")
@click.option("--sha256", help="expected sha256 of the archive.")
@user_errors
def download(dest: str | None, url: str | None, sha256: str | None) -> None:
    """Download and verify the ESC-50 dataset."""
    from esc50.core.data.location import ENV_VAR
    from esc50.core.files.cache import cache_dir
    from esc50.core.data.download import OFFICIAL_URL, download_dataset

    root = download_dataset(url or OFFICIAL_URL, Path(dest) if dest else cache_dir(), sha256)
    click.echo(f"ESC-50 is ready in {root}; pass --data {root} or set {ENV_VAR}={root}")


@cli.group()
def weights() -> None:
    """Published weight files known by name (checkpoint=NAME): list, download, verify, path."""


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output.")
@user_errors
def weights_list(as_json: bool) -> None:
    """Every weight file the installed plugins know, whether it is cached, and the trained
    models they ship."""
    from esc50.core.commands.weights import trained_rows, weights_rows
    from esc50.core.plugin_api.registry import load_registry

    registry = load_registry()
    rows, trained = weights_rows(registry), trained_rows(registry)
    if as_json:
        click.echo(json.dumps([{"kind": "weights file", **row} for row in rows]
                              + [{"kind": "trained model", **row} for row in trained], indent=2))
        return
    for row in trained:
        click.echo(f"{row['name']} (trained model, in the package): {row['file']}, "
                   f"{row['size']:,} bytes" if row["size"] else f"{row['name']}: {row['file']} "
                   "(missing)")
        click.echo(f"    {row['description']}")
        click.echo(f"    checksum {row['checksum']}; licence: {row['licence']}")
        click.echo(f"    registered by {row['registered_by']}")
    for row in rows:
        size = f", {row['size']:,} bytes" if row["size"] else ""
        click.echo(f"{row['name']}: {row['file']}{size}, "
                   f"{'cached at ' + row['cached'] if row['cached'] else 'not cached'}")
        click.echo(f"    from {', '.join(row['urls'])}")
        checksum = row["checksum"] or "none published (recorded at the first download)"
        click.echo(f"    checksum {checksum}; licence: {row['licence']}")
        click.echo(f"    cite: {row['citation']}; registered by {row['registered_by']}")


@weights.command("download")
@click.argument("names", nargs=-1, required=True)
@user_errors
def weights_download(names: tuple[str, ...]) -> None:
    """Fetch weight files into the cache (verified; a broken download resumes)."""
    from esc50.core.commands.weights import download
    from esc50.core.plugin_api.registry import load_registry

    registry = load_registry()
    for name in names:
        click.echo(f"{name}: {download(registry, name, click.echo)}")


@weights.command("verify")
@click.argument("names", nargs=-1)
@user_errors
def weights_verify(names: tuple[str, ...]) -> None:
    """Check cached weight files against their checksums (all when none is named)."""
    from esc50.core.commands.weights import verify
    from esc50.core.plugin_api.registry import load_registry

    results = verify(load_registry(), list(names))
    for name, outcome in results:
        click.echo(f"{name}: {outcome}")
    if any(outcome.startswith("does not match") for _, outcome in results):
        raise SystemExit(1)


@weights.command("path")
@click.argument("name")
@user_errors
def weights_path(name: str) -> None:
    """Where a weight file is (or will be) cached."""
    from esc50.core.commands.weights import path_of
    from esc50.core.plugin_api.registry import load_registry

    click.echo(path_of(load_registry(), name))


@cli.command()
@click.argument("checkpoint", metavar="MODEL")
@click.option("--data", help="dataset folder (default: the one the run was trained on).")
@click.option("--fold", type=int, help="evaluate on this fold (default: the run's validation "
              "split; an ensemble needs a fold none of its models trained on).")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output.")
@click.option("--training-clips", is_flag=True, help="score a fold holding clips the model "
              "trained on (refused otherwise); the figures are labelled training accuracy.")
@CHECKPOINT_CHOICE
@ALLOW_CHANGED_DATA
@user_errors
def evaluate(checkpoint: str, data: str | None, fold: int | None, as_json: bool, which: str,
             allow_changed_data: bool, training_clips: bool) -> None:
    """Accuracy, macro F1, per-class precision/recall and confusion matrix of a trained run
    (its final epoch unless --checkpoint best), or of a cross-validation's fold models together
    (an ensemble) on a fold none of them trained on."""
    from esc50.core.commands import api

    warn = functools.partial(click.echo, err=True)
    report = api.load(checkpoint, which, warn=warn).evaluate(data, fold, allow_changed_data,
                                                             warn=warn,
                                                             training_clips=training_clips)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['checkpoint']} (epoch {report['epoch']}) on {report['selection']} of "
               f"{report['data']}: {report['clips']} clips")
    scope = "training " if report["training_clips"] else ""
    click.echo(f"{scope}accuracy {report['accuracy']:.3f}   {scope}macro F1 "
               f"{report['macro_f1']:.3f}\n")
    for member in report.get("members", []):
        click.echo(f"  alone: {member['run']}: accuracy {member['accuracy']:.3f}")
    click.echo(f"{'class':<20} {'precision':>9} {'recall':>7} {'f1':>6} {'clips':>6}")
    for row in report["per_class"]:
        if row["support"]:
            click.echo(f"{row['class']:<20} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                       f"{row['f1']:>6.3f} {row['support']:>6}")
    names = [row["class"] for row in report["per_class"]]
    confusions = sorted(((n, names[t], names[p]) for t, r in enumerate(report["confusion_matrix"])
                         for p, n in enumerate(r) if n and p != t), reverse=True)[:10]
    if confusions:
        click.echo("\nmost frequent confusions (true -> predicted; --json has the full matrix):")
        for count, true, pred in confusions:
            click.echo(f"  {true} -> {pred}: {count}")


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False), metavar="RUN")
@click.option("--name", required=True, help="the name users will give the model (lower-case "
              "letters, digits, '.', '_', '-'), e.g. esc50-rescnn.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="the folder to "
              "write (inside the plugin package that will register it).")
@click.option("--cv", "cross_validation", type=click.Path(exists=True, file_okay=False),
              help="a cross-validation folder of the same settings: its figures are the card's "
              "estimate for unseen clips.")
@click.option("--data", help="dataset folder (default: the run's): scored to check float16 "
              "and to time the model.")
@click.option("--float32", "full_precision", is_flag=True, help="keep float32 weights (by "
              "default float16, where that changes no prediction on the dataset's clips).")
@user_errors
def package(run_dir: str, name: str, out: str, cross_validation: str | None, data: str | None,
            full_precision: bool) -> None:
    """A finished run as a trained model a plugin package ships by name: model.pt, LICENSE,
    MODEL_CARD.md and its training record (register it with register_trained_models)."""
    from esc50.core.commands.api import registry_with_warnings
    from esc50.core.commands.package import package_run

    echo = functools.partial(click.echo, err=True)
    done = package_run(Path(run_dir), Path(out), name, registry_with_warnings(echo),
                       not full_precision, Path(cross_validation) if cross_validation else None,
                       data, echo)
    click.echo(f"wrote {out} ({done.precision}, {done.path.stat().st_size / 2**20:.1f} MiB); "
               f"register it with register(\"{name}\", <path of {done.path.name}>, "
               f"\"sha256:{done.sha256}\", ...)")


@cli.command()
@click.argument("checkpoint", metavar="MODEL")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True,
              help="onnx (runs in onnxruntime) or torchscript (runs in torch alone).")
@click.option("--out", type=click.Path(dir_okay=False), help="file to write (default: "
              "model.onnx, model.int8.onnx or model.pt in the run folder); a .json side file "
              "goes beside it.")
@click.option("--quantize", type=click.Choice(["int8"]), help="int8 weights and activations "
              "(ONNX; onnxruntime's static quantization, calibrated on training clips).")
@click.option("--data", help="dataset folder for the int8 calibration clips (default: the one "
              "the run was trained on).")
@click.option("--hop", type=float, help="seconds between windows (default: half a window).")
@CHECKPOINT_CHOICE
@user_errors
def export(checkpoint: str, fmt: str, out: str | None, quantize: str | None, data: str | None,
           hop: float | None, which: str) -> None:
    """A trained run (or a cross-validation's fold models, as one ensemble) as one file that
    takes a mono waveform of any length (a short one padded as predict pads) at its rate and
    returns each window's class probabilities and their mean (featurizer and normalization
    included)."""
    from esc50.core.commands import api

    warn = functools.partial(click.echo, err=True)
    model = api.load(checkpoint, which, warn=warn)
    path, side = model.export(fmt, out, quantize, data, hop, warn)
    click.echo(f"wrote {path} ({model.description}; {path.stat().st_size / 2**20:.1f} MiB) and "
               f"{side} (class names, sample rate, window and hop)")


@cli.command()
@click.argument("checkpoint", metavar="MODEL")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=int, default=3, show_default=True, help="classes per file (per "
              "window with --timeline).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output (file, rank, class, "
              "probability; with --timeline: its segments, or --windows).")
@click.option("--timeline", is_flag=True, help="what sounds when: every window's start, end "
              "and top classes, and the segments of consecutive windows with one top class.")
@click.option("--hop", type=float, help="with --timeline: seconds between windows (default: "
              "half a window).")
@click.option("--min-prob", type=float, default=0.0, show_default=True, help="with --timeline: "
              "keep the classes (and segments) whose probability reaches this.")
@click.option("--windows", "window_rows", is_flag=True, help="with --timeline --csv: a row "
              "per window and class instead of a row per segment.")
@click.option("--plot", type=click.Path(dir_okay=False), help="with --timeline: a PNG of the "
              "top classes over time (one file: FILE; several: FILE with each input's name).")
@click.option("--rows", type=click.IntRange(min=1), help="with --plot: the N classes that lead "
              "the most windows (default: every class that leads one).")
@click.option("--rate", type=int, help="standard input (-) is raw PCM (signed 16-bit "
              "little-endian) at this rate, not WAV.")
@click.option("--channels", type=int, default=1, show_default=True,
              help="channels of raw PCM on standard input.")
@CHECKPOINT_CHOICE
@user_errors
def predict(checkpoint: str, files: tuple[str, ...], top_k: int, as_json: bool, as_csv: bool,
            timeline: bool, hop: float | None, min_prob: float, window_rows: bool,
            plot: str | None, rows: int | None, rate: int | None, channels: int,
            which: str) -> None:
    """Top classes with probabilities for audio files or folders (any length, rate, channels;
    - reads standard input), from a run or from a cross-validation's fold models together;
    --timeline says what sounds when."""
    from esc50.cli.timeline import print_timelines
    from esc50.core.commands import api
    from esc50.core.commands.timeline import check_settings
    from esc50.core.data.stream import AudioInput

    if top_k < 1:
        raise Esc50Error(f"--top-k {top_k} must be at least 1")
    if as_json and as_csv:
        raise Esc50Error("--json and --csv: choose one output format")
    if not timeline and (hop is not None or min_prob or window_rows or plot or rows):
        raise Esc50Error("--hop, --min-prob, --windows, --plot and --rows go with --timeline")
    model = api.load(checkpoint, which, warn=functools.partial(click.echo, err=True))
    check_settings(min_prob, top_k)  # every option once, before any input is read
    model.hop_samples(hop)
    inputs = AudioInput(model.sample_rate, rate, channels)
    if model.is_ensemble:
        click.echo(f"scoring with {model.description}: their probabilities averaged", err=True)
    if model.trained is not None:
        click.echo(f"{model.trained.name}: licence of the weights: {model.trained.licence}",
                   err=True)
    paths = [Path(f) for f in files]
    if timeline:
        failed = print_timelines(model, inputs, paths, top_k, hop, min_prob, as_json, as_csv,
                                 window_rows, plot, rows)
    else:
        failed = print_predictions(model, inputs, paths, top_k, as_json, as_csv)
    if failed:
        raise SystemExit(1)


def print_predictions(model: Any, inputs: Any, paths: list[Path], top_k: int, as_json: bool,
                      as_csv: bool) -> bool:
    """The top classes of each file as text, JSON or CSV; whether any file failed."""
    from esc50.core.commands.predict import audio_files, predict_files

    results = list(predict_files(model.members, model.class_names, inputs,
                                 model.config.length_wav, audio_files(paths), top_k))
    if as_json:
        click.echo(json.dumps([{"file": str(r.path), "error": r.error,
                                "top": [{"class": c, "probability": p} for c, p in r.top]}
                               for r in results], indent=2))
    elif as_csv:
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")  # quotes a name that needs it
        rows.writerow(["file", "rank", "class", "probability"])
        for r in results:
            rows.writerows([r.path, rank, name, f"{probability:.4f}"]
                           for rank, (name, probability) in enumerate(r.top, start=1))
        click.echo(text.getvalue(), nl=False)
    else:
        for r in results:
            top = "  ".join(f"{name} {probability:.2f}" for name, probability in r.top)
            click.echo(f"{r.path}: {top}" if r.error is None else f"{r.path}: error: {r.error}")
    failed = [r for r in results if r.error]
    for r in failed:
        click.echo(f"error: {r.error}", err=True)
    return bool(failed)


cli.add_command(analyze)
