"""`esc50 package`: a finished run as a trained model a plugin package ships and registers by
name (hook ``register_trained_models``), with its licence, its card and its training record.

The folder it writes:

- ``model.pt``: what prediction needs of the run's final epoch (the moving average where the run
  kept one), no optimizer or generator state; in float16 with ``half=True`` when that changes
  the predicted class of none of the dataset's clips (else float32, and it says how many
  changed). ``model.pt.sha256`` beside it; the plugin registers that sha256.
- ``LICENSE``: the licence of the weights, which is the data's (ESC-50: CC BY-NC 3.0,
  non-commercial), and ``ATTRIBUTION.txt``: the dataset's own licence file with the source of
  every clip, where the dataset has one.
- ``MODEL_CARD.md``: the model, the data, the recipe, the estimate for unseen clips (a
  cross-validation of the same settings: mean +- sample standard deviation and per-class
  accuracy, each clip scored by the fold model that never trained on it), numerics, size,
  speed here, and its limits, with what it answers for sounds outside its classes.
- ``record/``: the run's ``config.toml``, ``history.csv``, ``metrics.json`` and
  ``clips.txt`` (the clips it trained on), so that ``esc50 train --config record/config.toml``
  trains it again.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from esc50.commands.crossval import experiment_settings, read_summary, same_experiment
from esc50.commands.evaluate import evaluate_runs
from esc50.commands.members import LoadedRun, checked_members, load_runs
from esc50.core.config import TaskConfig, load_config
from esc50.core.data.audiocache import AudioCache
from esc50.core.data.clips import find_clips
from esc50.core.data.location import resolve_data_dir
from esc50.core.data.split import Split
from esc50.core.errors import Esc50Error
from esc50.core.files.digest import file_sha256
from esc50.core.files.write import write_text
from esc50.core.plugin_api.contracts import ClipTable
from esc50.core.plugin_api.registry import Registry
from esc50.core.plugin_api.trained import NAME
from esc50.core.results.card import CARD, limits
from esc50.core.results.checkpoint import load_checkpoint, save_checkpoint
from esc50.core.results.folder import checkpoint_path
from esc50.core.results.metrics import classification_report
from esc50.core.training.scoring import Member, planned, probabilities

MODEL_FILE = "model.pt"
RECORD = "record"
KEPT = ("config", "class_names", "plugins", "split", "scoring", "normalizer", "epoch")
RUN_FILES = ("config.toml", "history.csv", "metrics.json")
PROBE_SOUNDS = ("white noise", "a 1 kHz tone")  # sounds outside ESC-50's classes


@dataclass
class Packaged:
    """What ``package_run`` wrote: the model file, its sha256, its precision and how many of
    the dataset's clips half precision would change (or changed: then it stayed float32)."""

    path: Path
    sha256: str
    precision: str
    changed_by_half: int | None
    clips: int


def package_run(run_dir: Path, out: Path, name: str, registry: Registry, half: bool = True,
                cross_validation: Path | None = None, data: str | None = None,
                note: str = "", log: Callable[[str], None] = print) -> Packaged:
    """Write the trained model of ``run_dir`` (its final epoch) to the folder ``out`` as
    ``name`` (see the module docstring). ``cross_validation``: a cross-validation folder of the
    same settings, whose figures the card quotes as the estimate for unseen clips; ``data``:
    the dataset folder (default: the run's), scored to check half precision and to time it;
    ``note``: what the card should say of the data besides its folder (a re-encoded copy,
    say)."""
    if not NAME.fullmatch(name):
        raise Esc50Error(f"--name {name!r}: a trained model's name is lower-case letters, "
                         "digits, '.', '_' or '-'")
    [run] = load_runs(checkpoint_path(run_dir, "last"), "last", registry, log)
    estimate = cross_validation_estimate(cross_validation, run, registry, data, log) \
        if cross_validation else None
    state = load_checkpoint(run.path)
    shipped = {key: state[key] for key in KEPT if key in state}
    model = run.member.classifier.model
    shipped["model"] = {k: v.clone() for k, v in model.state_dict().items()}  # scored weights
    table = find_clips(resolve_data_dir(data or run.config.data), run.config, registry)
    member = planned(run.member, len(table.clips), run.config, log)
    audio = AudioCache(table.clips, run.config,
                       min_samples=member.classifier.featurizer.min_samples)
    started = time.perf_counter()
    full = probabilities(member.classifier, audio.waves, audio.lengths, member.scoring)
    seconds = time.perf_counter() - started
    changed = None
    if half:
        halved = {k: v.half() if v.is_floating_point() else v for k, v in shipped["model"].items()}
        model.load_state_dict(halved)  # float16 values in the float32 model
        scores = probabilities(member.classifier, audio.waves, audio.lengths, member.scoring)
        changed = int((scores.argmax(axis=1) != full.argmax(axis=1)).sum())
        if changed == 0:
            shipped["model"] = halved
        else:
            log(f"note: float16 weights change the predicted class of {changed} of "
                f"{len(table.clips)} clips: the model is written in float32")
            model.load_state_dict(shipped["model"])
    precision = "float16" if changed == 0 else "float32"
    out.mkdir(parents=True, exist_ok=True)
    target = out / MODEL_FILE
    save_checkpoint(shipped, target)
    write_record(run_dir, out / RECORD, run.state)
    write_licence(out, table)
    facts = {"name": name, "precision": precision, "changed_by_half": changed, "note": note,
             "clips": len(table.clips), "bytes": target.stat().st_size,
             "clip_seconds": seconds / len(table.clips),
             "probes": probe_answers(run.member, run.config, run.state["class_names"])}
    write_text(out / CARD, trained_card(run, facts, estimate, table))
    return Packaged(target, file_sha256(target), precision, changed, len(table.clips))


def write_record(run_dir: Path, record: Path, state: dict[str, Any]) -> None:
    """The run's config, history and metrics, and the clips it trained on, one per line."""
    record.mkdir(exist_ok=True)
    for file in RUN_FILES:
        if (run_dir / file).is_file():
            shutil.copyfile(run_dir / file, record / file)
    split = Split.from_dict(state["split"])
    write_text(record / "clips.txt", "".join(f"{clip}\n" for clip in split.train))


def write_licence(out: Path, table: ClipTable) -> None:
    """``LICENSE`` (the weights carry the data's licence) and ``ATTRIBUTION.txt`` (the dataset's
    licence file, with every clip's source, where it has one)."""
    licence = table.licence or "not stated by the dataset plugin"
    write_text(out / "LICENSE", "\n".join([
        "Licence of these weights (model.pt)", "",
        f"The weights were learned from the dataset in {table.root.name}, whose licence is: "
        f"{licence}.", "",
        "They carry that licence: where it restricts use (non-commercial, for one), so is any "
        "use of these weights restricted."
        + (" ATTRIBUTION.txt is the dataset's own licence file: the source and licence of "
           "every clip." if (table.root / "LICENSE").is_file() else ""), "",
        "The esc50 code that loads and runs them is MIT-licensed; this licence covers the "
        "weights only.", ""]))
    source = table.root / "LICENSE"
    if source.is_file():
        shutil.copyfile(source, out / "ATTRIBUTION.txt")


def cross_validation_estimate(folder: Path, run: LoadedRun, registry: Registry,
                              data: str | None, log: Callable[[str], None]) -> dict[str, Any]:
    """The estimate for unseen clips of the settings ``run`` was trained with: the
    cross-validation in ``folder`` (its ``cv.json``), and per-class accuracy over every clip,
    each scored by the fold model that never trained on it. Refused when its settings differ
    from the run's in anything but the split."""
    summary = read_summary(folder)
    folds = checked_members(folder, "last")
    if not same_experiment(summary, run.config):
        theirs = experiment_settings(load_config(folds[0] / "config.toml"))
        ours = experiment_settings(run.config)
        differing = [key for key in sorted(theirs.keys() | ours.keys())
                     if key != "split" and theirs.get(key) != ours.get(key)]
        raise Esc50Error(f"{folder} was trained with other settings than the run "
                         f"({', '.join(differing)}): its cross-validation does not estimate "
                         "this model")
    matrix = None
    for fold in folds:
        [member] = load_runs(fold, "last", registry, log)
        report = evaluate_runs([member], registry, data, warn=log)
        matrix = np.array(report["confusion_matrix"]) + (0 if matrix is None else matrix)
        log(f"{fold.name}: {report['accuracy']:.3f} on its {report['clips']} held-out clips")
    pooled = classification_report(
        np.repeat(np.arange(len(matrix)), matrix.sum(axis=1)),
        np.concatenate([np.repeat(np.arange(len(matrix)), row) for row in matrix]),
        run.state["class_names"])
    return {"folder": folder, "summary": summary, "pooled": pooled,
            "folds": {int(k): v for k, v in summary["folds"].items()}}


def probe_answers(member: Member, config: TaskConfig, class_names: list[str]
                  ) -> list[tuple[str, str, float]]:
    """What the model answers for sounds outside ESC-50's classes (one clip length each):
    (sound, top class, its probability)."""
    length, rate = config.length_wav, config.sample_rate
    generator = torch.Generator().manual_seed(0)
    sounds = {"white noise": 0.1 * torch.randn(length, generator=generator),
              "a 1 kHz tone": 0.1 * torch.sin(2 * torch.pi * 1000 * torch.arange(length) / rate)}
    answers = []
    for sound in PROBE_SOUNDS:
        wave = (sounds[sound].clamp(-1, 1) * 32767).round().to(torch.int16)[None]
        scores = probabilities(member.classifier, wave, torch.tensor([length]), member.scoring)[0]
        top = int(scores.argmax())
        answers.append((sound, class_names[top], float(scores[top])))
    return answers


def trained_card(run: LoadedRun, facts: dict[str, Any], estimate: dict[str, Any] | None,
                 table: ClipTable) -> str:
    """MODEL_CARD.md of a packaged model."""
    config, state = run.config, run.state
    parameters = sum(p.numel() for p in run.member.classifier.model.parameters())
    seconds = config.length_wav / config.sample_rate
    half = facts["changed_by_half"]
    numerics = ("scored under bf16 autocast where the CPU has bf16 instructions (AVX-512 BF16 "
                "or AMX) or on a GPU, as it trained; elsewhere in float32, which can move a few "
                "clips" if run.member.scoring.bf16 else "scored in float32, as it trained")
    lines = [
        f"# Model card: {facts['name']}", "",
        f"A trained classifier of {len(state['class_names'])} sound classes: `esc50 predict "
        f"{facts['name']} clip.wav` labels a recording with no training and no network.", "",
        "## Model",
        f"- `{config.model}` on `{config.featurizer}` features ({config.sample_rate} Hz), "
        f"{parameters:,} parameters; weights stored in {facts['precision']} "
        f"({facts['bytes'] / 2**20:.1f} MiB, `model.pt`, checked against its sha256 before "
        "every use)" + (f"; float16 changes the predicted class of {half} of the "
                        f"{facts['clips']} training clips" if half is not None else "") + ".",
        f"- Numerics: {numerics}.",
        f"- Input: mono audio of any length, rate and channel count, resampled to "
        f"{config.sample_rate} Hz and scored in {seconds:g}-second windows; output: "
        f"probabilities of {len(state['class_names'])} classes.", "",
        "## Data and licence",
        f"- Trained on all {facts['clips']} clips of `{table.root.name}` ({config.dataset}); "
        f"the clip list is `record/clips.txt`." + (f" {facts['note']}" if facts["note"] else ""),
        f"- **Licence of the weights**: that of the data they were learned from, "
        f"{table.licence or 'which its dataset plugin does not state'}; see `LICENSE`"
        + (" and, for every clip's source and licence, `ATTRIBUTION.txt`"
           if (table.root / "LICENSE").is_file() else "")
        + ". The esc50 code is MIT; these weights are not.", "",
        "## How well it does on clips it never heard",
        *estimate_lines(estimate, state["class_names"]), "",
        "## Recipe and record",
        f"- {config.num_epochs} epochs, batch {config.batch_size}, {config.optimizer} at "
        f"learning rate {config.learning_rate:g}, augmentations: "
        f"{', '.join(f'`{a}`' for a in config.augs) or 'none'}; "
        f"moving average {config.ema_decay:g}.",
        "- `record/config.toml` holds every setting (seed included): `esc50 train --config "
        "record/config.toml --data ESC-50 --run-name NEW` trains it again; "
        "`record/history.csv` and `record/metrics.json` are the run's own.", "",
        "## Speed",
        f"- {facts['clip_seconds'] * 1000:.1f} ms per {seconds:g}-second clip "
        f"({seconds / facts['clip_seconds']:.0f}x real time) scoring the {facts['clips']} "
        f"clips in batches on the machine that packaged it ({os.cpu_count()} CPU cores"
        f"{', bf16' if run.member.scoring.bf16 else ''}).", "",
        "## Limits",
        *limits(config, len(state["class_names"])),
        "- Outside its classes it still answers one of them, often with confidence: "
        + "; ".join(f"{sound}: {label} ({probability:.0%})"
                    for sound, label, probability in facts["probes"]) + ".",
        "- ESC-50's clips are short, clean, single-event recordings from Freesound; field "
        "recordings with overlapping sounds and distant sources are harder.", ""]
    return "\n".join(lines)


def estimate_lines(estimate: dict[str, Any] | None, class_names: list[str]) -> list[str]:
    """The card's estimate for unseen clips, from a cross-validation of the same settings."""
    if estimate is None:
        return ["- Not measured: no cross-validation of these settings was given "
                "(`esc50 package --cv FOLDER`)."]
    summary, pooled = estimate["summary"], estimate["pooled"]
    spread = f" +- {summary['std_accuracy']:.1%}" if summary.get("std_accuracy") else ""
    folds = ", ".join(f"fold {k}: {v:.1%}" for k, v in sorted(estimate["folds"].items()))
    rows = sorted(pooled["per_class"], key=lambda row: (row["recall"], row["class"]))
    half = -(-len(rows) // 2)
    cells = [f"{row['class']} | {row['recall']:.0%}" for row in rows] + ["|"]
    return [
        f"- **{summary['mean_accuracy']:.1%}{spread}** (mean +- sample standard deviation over "
        f"{len(estimate['folds'])} folds of a cross-validation with the same settings, each "
        f"fold model scored at its final epoch on the fold it never trained on: {folds}).",
        "- Per class (each clip scored by the fold model that never trained on it; "
        f"{pooled['accuracy']:.1%} of all clips), worst first:", "",
        "| class | accuracy | class | accuracy |", "|---|---:|---|---:|",
        *(f"| {a} | {b} |" for a, b in zip(cells[:half], cells[half:])),
    ]
