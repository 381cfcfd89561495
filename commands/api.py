"""The Python API: train, cross-validate, load and predict without the command line (notebooks,
scripts). The ``esc50`` commands are a thin layer over these functions; the names are exported
from the package (``esc50.train``, ``esc50.load``, ...).

    import esc50
    run = esc50.train(model="plugins.crnn", augs=["noise"], data="../shared/datasets/esc50",
                      epochs=10)
    run.plot()                                    # learning curves
    model = run.load()                            # the final epoch's weights
    model.predict("street.wav", top_k=3)          # [("car_horn", 0.71), ...]

Every error is an :class:`esc50.Esc50Error` with the same one-line message as the command.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from matplotlib.figure import Figure

from esc50.core.data.audio import float_samples, mono_blocks
from esc50.core.data.stream import AudioInput
from esc50.core.training.classifier import Classifier
from esc50.core.config import TaskConfig, load_config, recipe_path
from esc50.commands.arguments import checked_arguments
from esc50.commands import tune as search
from esc50.commands.crossval import cross_validate
from esc50.core.errors import Esc50Error, one_line, optional_module
from esc50.commands.evaluate import evaluate_runs
from esc50.commands.members import LoadedRun, describe, load_runs, model_source
from esc50.commands.timeline import Timeline, Window, build_timeline, hop_samples
from esc50.core.results.folder import read_metrics
from esc50.core.results.plots import PlotFigure, confusion_figure, learning_curves
from esc50.commands.export import default_name, export_runs
from esc50.commands.predict import (WINDOW_BATCH, Prediction, audio_files, predict_files,
                                         probabilities, top_classes)
from esc50.core.plugin_api.choices import check_options_in_run
from esc50.core.plugin_api.hookspecs import KINDS
from esc50.core.plugin_api.registry import Registry, load_registry
from esc50.core.training.memory import keep_freed_memory, measure, plan_batch
from esc50.core.training.scoring import mean_probabilities
from esc50.core.training.resume import resume as resume_run
from esc50.core.training.trainer import Trainer

Log = Callable[[str], None]


@checked_arguments
def config(config_file: str | Path | None = None, recipe: str | None = None,
           pretrained: bool = False, **settings: Any) -> TaskConfig:
    """A validated TaskConfig: the defaults, then a config file or a built-in recipe, then
    ``settings`` (TaskConfig keys, or ``"<plugin id>.<option>"`` keys given as a dict;
    None values are left out). ``pretrained=True`` sets the model's ``pretrained`` option."""
    if recipe and config_file:
        raise Esc50Error("a recipe (--recipe) and a config file (--config) both give a config: "
                         "use one")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()
                if v is not None}  # a folder as a Path or a string alike
    path = recipe_path(recipe) if recipe else config_file
    built = load_config(path, **settings) if path else TaskConfig().override(**settings)
    check_options_in_run(built, [k for k in settings if k.count(".") >= 2])
    if pretrained:
        joiner = "," if ":" in built.model else ":"
        built = built.override(model=f"{built.model}{joiner}pretrained=true")
    return built


@checked_arguments
def list_plugins(kind: str | None = None, registry: Registry | None = None
                 ) -> list[dict[str, Any]]:
    """Every installed model, augmentation, featurizer, dataset and logger (or one ``kind``'s):
    id, kind, package, version, description and options (name, type, default, doc)."""
    registry = registry or load_registry()
    if kind is not None and kind not in KINDS:
        raise Esc50Error(f"kind={kind!r} must be one of {', '.join(KINDS)} (or None: all)")
    kinds = [kind] if kind else list(KINDS)
    return [{"id": c.id, "kind": c.kind, "package": c.package, "version": c.version,
             "description": c.description, "options": c.option_table()}
            for k in kinds for c in registry.of_kind(k)]


@dataclass
class Run:
    """A finished training run: its folder, config, history (a row per epoch) and metrics."""

    run_dir: Path
    config: TaskConfig
    history: list[dict[str, float]]
    metrics: dict[str, Any]

    @classmethod
    def open(cls, run_dir: str | Path) -> Run:
        run_dir = Path(run_dir)
        metrics = read_metrics(run_dir)
        try:
            with (run_dir / "history.csv").open(newline="") as handle:
                history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
        except (OSError, ValueError, TypeError) as exc:
            raise Esc50Error(f"{run_dir} is not a finished run directory: "
                             f"{' '.join(str(exc).split())}") from None
        return cls(run_dir, load_config(run_dir / "config.toml"), history, metrics)

    @property
    def accuracy(self) -> float | None:
        """The final epoch's validation accuracy (what the run reports); None for a run that
        held no clips out (``split="all"``)."""
        return self.metrics["final_val_accuracy"]

    def dataframe(self) -> Any:
        """The history as a pandas DataFrame (pandas must be installed)."""
        return optional_module("pandas", "pandas").DataFrame(self.history)

    def plot(self) -> Figure:
        """Loss and accuracy per epoch (shown inline in a notebook)."""
        return learning_curves(self.history, f"{self.run_dir.name} ({self.config.model})")

    @checked_arguments
    def load(self, checkpoint: str = "last") -> Model:
        """The trained classifier: the final epoch (``"last"``) or ``"best"`` (chosen on the
        validation clips)."""
        return load(self.run_dir, checkpoint)

    def __repr__(self) -> str:
        scored = "nothing held out" if self.accuracy is None else \
            f"final val accuracy {self.accuracy:.3f}"
        return (f"Run({str(self.run_dir)!r}, model={self.config.model!r}, epochs="
                f"{self.metrics['epochs']}, {scored})")


@dataclass
class CrossValidation:
    """A finished cross-validation: per-fold runs and the summary of ``cv.json``."""

    root: Path
    summary: dict[str, Any]
    runs: list[Run]

    @property
    def mean(self) -> float:
        return self.summary["mean_accuracy"]

    @property
    def std(self) -> float | None:
        """The sample standard deviation over folds (None for one fold)."""
        return self.summary["std_accuracy"]

    def dataframe(self) -> Any:
        """One row per fold (fold, accuracy, epochs, seconds per epoch)."""
        return optional_module("pandas", "pandas").DataFrame([
            {"fold": int(fold), "accuracy": accuracy, "epochs": run.metrics["epochs"],
             "seconds_per_epoch": run.metrics["seconds_per_epoch"]}
            for (fold, accuracy), run in zip(self.summary["folds"].items(), self.runs)])

    def plot(self) -> Figure:
        """Final-epoch accuracy per fold, with the mean."""
        figure = PlotFigure(figsize=(6, 3.5))
        axis = figure.subplots()
        folds = list(self.summary["folds"])
        axis.bar(folds, list(self.summary["folds"].values()))
        axis.axhline(self.mean, color="black", linestyle="--", label=f"mean {self.mean:.3f}")
        axis.set_xlabel("held-out fold")
        axis.set_ylabel("accuracy (final epoch)")
        axis.set_ylim(0, 1)
        axis.legend()
        figure.tight_layout()
        return figure


@checked_arguments
def train(model: str | None = None, augs: list[str] | None = None,
          data: str | Path | None = None,
          epochs: int | None = None, *, config_file: str | Path | None = None,
          recipe: str | None = None, log: Log = print, registry: Registry | None = None,
          **settings: Any) -> Run:
    """Train as ``esc50 train`` does (same run folder, same progress bars) and return the run.
    ``settings`` are TaskConfig keys (``batch_size=32``, ``val_fold=1``, ...)."""
    run_config = config(config_file, recipe, **{
        **settings, **_given(model=model, augs=augs, data=data, num_epochs=epochs)})
    return _fit(Trainer(run_config, registry or registry_with_warnings(log), log=log))


@checked_arguments
def resume(run_dir: str | Path, data: str | Path | None = None, epochs: int | None = None,
           allow_changed_data: bool = False, log: Log = print,
           registry: Registry | None = None) -> Run:
    """Continue an interrupted run (``esc50 train --resume``); ``epochs`` extends it."""
    return _fit(resume_run(Path(run_dir), registry or registry_with_warnings(log),
                           str(data) if data is not None else None, epochs, allow_changed_data,
                           log=log))


@checked_arguments
def cv(model: str | None = None, augs: list[str] | None = None, data: str | Path | None = None,
       epochs: int | None = None, *, name: str, folds: list[int] | None = None,
       config_file: str | Path | None = None, recipe: str | None = None,
       allow_changed_data: bool = False, log: Log = print, registry: Registry | None = None,
       jobs: int = 1, **settings: Any) -> CrossValidation:
    """Cross-validate as ``esc50 cv`` does: one run per held-out fold under
    ``<output_dir>/<name>``, each scored at its final epoch; ``jobs`` folds at once."""
    run_config = config(config_file, recipe, **{
        **settings, **_given(model=model, augs=augs, data=data, num_epochs=epochs)})
    summary = cross_validate(run_config, registry or registry_with_warnings(log), name, folds,
                             allow_changed_data, log=log, jobs=jobs)
    root = Path(run_config.output_dir) / name
    return CrossValidation(root, summary, [Run.open(root / f"fold-{k}") for k in summary["folds"]])


@checked_arguments
def tune(space: list[str] | None = None, *, name: str, trials: int = 10, jobs: int = 1,
         inner_folds: int = 1, storage: str | None = None, space_file: str | Path | None = None,
         config_file: str | Path | None = None, recipe: str | None = None, log: Log = print,
         registry: Registry | None = None, **settings: Any) -> dict[str, Any]:
    """Search settings on the training folds only, as ``esc50 tune`` does: ``space`` entries
    ``KEY=low:high[:log]`` or ``KEY=a|b|c`` (or a ``space_file``), ``trials`` trials in ``jobs``
    processes, each scored on ``inner_folds`` inner folds; ``val_fold`` (a setting) is the
    outer fold, left out of every trial. Returns the study's summary (best settings, inner
    score, the config file of the best settings)."""
    dimensions = [search.parse_dimension(text) for text in space or []]
    dimensions += search.read_space(space_file) if space_file else []
    run_config = config(config_file, recipe, **settings)
    prepared = search.prepare(run_config, registry or registry_with_warnings(log), name,
                              dimensions, storage, inner_folds, log)
    return search.tune(prepared, trials, jobs, log)


class Model:
    """A trained classifier, or an ensemble of them (the fold models of a cross-validation,
    probabilities averaged), with what it needs to predict: class names, sample rate, clip
    length. ``load(run)`` gives one; :meth:`predict` takes a file, a folder or audio samples,
    :meth:`timeline` says what sounds when in a recording of any length."""

    def __init__(self, source: str | Path, checkpoint: str, registry: Registry,
                 warn: Log = print) -> None:
        self.path, self.trained = model_source(source, registry)
        self.checkpoint, self.registry = checkpoint, registry
        keep_freed_memory()  # scoring allocates the same large buffers for every batch again
        self.runs = load_runs(self.path, checkpoint, registry, warn)
        self.members = [run.member for run in self.runs]
        self.config = self.runs[0].config
        self._reports: dict[tuple, dict] = {}
        self._warn = warn
        self._window_batch: int | None = None

    def window_batch(self) -> int:
        """The most windows this process scores at a time: ``WINDOW_BATCH``, or as many as fit
        in memory (:func:`plan_batch`, on what scoring one window allocates), said in a note.
        Planned once, the first time a recording has more than one window to score."""
        if self._window_batch is None:
            length = self.config.length_wav
            window_bytes = measure(lambda: mean_probabilities(
                self.members, torch.zeros(1, length), torch.full((1,), length)),
                torch.device("cpu"))
            self._window_batch, note = plan_batch(WINDOW_BATCH, window_bytes, "window")
            if note:
                self._warn(note)
        return self._window_batch

    def note(self, line: str) -> None:
        """Say ``line`` through ``warn`` as a note, on one line."""
        self._warn(f"note: {one_line(line)}")

    def audio_input(self, raw_rate: int | None = None, channels: int = 1) -> AudioInput:
        """How this model reads recordings: at its sample rate (standard input as WAV, or as raw
        PCM at ``raw_rate`` with ``channels``). A file that stops decoding part way, whose
        decoder skipped damaged parts or whose WAV header was never finished is read as far as
        it decodes, said in a :meth:`note`."""
        return AudioInput(self.sample_rate, raw_rate, channels, damage=self.note)

    @property
    def is_ensemble(self) -> bool:
        return len(self.runs) > 1

    @property
    def classifier(self) -> Classifier:
        """The classifier of a single model (an ensemble has one per member: ``runs``)."""
        return self._single().member.classifier

    @property
    def state(self) -> dict[str, Any]:
        """What a single model's checkpoint holds (an ensemble's members: ``runs``)."""
        return self._single().state

    @property
    def class_names(self) -> list[str]:
        return list(self.runs[0].state["class_names"])

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def numerics(self) -> str:
        """How this model scores here: ``bf16`` (autocast, where its run scored so and this
        machine computes bf16) or ``float32``."""
        return "bf16" if any(member.scoring.bf16 for member in self.members) else "float32"

    @property
    def description(self) -> str:
        """Which model this is: a checkpoint, or an ensemble of k models."""
        return describe(self.runs)

    @checked_arguments
    def predict(self, audio: str | Path | np.ndarray | torch.Tensor,
                sample_rate: int | None = None, top_k: int = 3) -> Any:
        """Top-``top_k`` (class, probability) pairs, most probable first, for:

        - a file: its pairs (a file that cannot be read raises its one-line error);
        - a folder: a :class:`Prediction` per audio file under it (``.path``, ``.top``,
          ``.error``: one bad file never hides the others);
        - samples ``[T]`` (one clip) or ``[N, T]`` (N clips) at ``sample_rate``: the pairs, or a
          list of them. Any length: long clips are scored in windows whose probabilities are
          averaged, as ``esc50 predict`` does."""
        if top_k < 1:
            raise Esc50Error(f"top_k={top_k} must be at least 1")
        if isinstance(audio, (str, Path)):
            path = Path(audio)
            if path.is_dir():
                return list(self.predict_files([path], top_k))
            result = next(self.predict_files([path], top_k))
            if result.error:
                raise Esc50Error(result.error)
            return result.top
        clips = self._sample_clips(audio, sample_rate, "predict")
        results = [top_classes(probabilities(self.members, blocks, self.config.length_wav,
                                             "the samples", self.window_batch),
                               self.class_names, top_k)
                   for blocks in clips]
        return results[0] if np.ndim(audio) == 1 else results

    @checked_arguments
    def predict_files(self, paths: list[str | Path], top_k: int = 3) -> Iterator[Prediction]:
        """A :class:`Prediction` per file (files as given, folders searched for audio)."""
        files = audio_files([Path(p) for p in paths], self.note)
        return predict_files(self.members, self.class_names, self.audio_input(),
                             self.config.length_wav, files, top_k, self.window_batch)

    @checked_arguments
    def timeline(self, audio: str | Path | np.ndarray | torch.Tensor,
                 sample_rate: int | None = None, hop: float | None = None,
                 min_prob: float = 0.0, top_k: int = 3) -> Timeline:
        """What sounds when: every window (the run's clip length, every ``hop`` seconds; half
        a window by default) with its top classes reaching ``min_prob``, and the segments of
        consecutive windows with one top class. ``audio``: a file, or mono samples ``[T]`` at
        ``sample_rate``. ``.dataframe()`` gives the segments (or ``"windows"``) as a pandas
        DataFrame, ``.plot()`` a figure."""
        if isinstance(audio, (str, Path)):
            return self.timeline_of(self.audio_input(), Path(audio), hop, min_prob, top_k)
        if np.ndim(audio) != 1:
            raise Esc50Error(f"timeline(samples) takes mono samples [T], not shape "
                             f"{tuple(np.shape(audio))}")
        [blocks] = self._sample_clips(audio, sample_rate, "timeline")
        return build_timeline(self.members, self.class_names, blocks, self.sample_rate,
                              self.config.length_wav, self.hop_samples(hop), min_prob, top_k,
                              "the samples", window_batch=self.window_batch)

    def timeline_of(self, inputs: AudioInput, path: Path, hop: float | None = None,
                    min_prob: float = 0.0, top_k: int = 3,
                    on_window: Callable[[Window], None] | None = None,
                    share_steps: bool = False) -> Timeline:
        """:meth:`timeline` of a file (or ``-``, standard input) read as ``inputs`` says;
        ``on_window`` gets each window as soon as it is scored; ``share_steps``: consecutive
        windows scored from one pass over their audio (:func:`build_timeline`)."""
        return build_timeline(self.members, self.class_names, inputs.blocks(path),
                              self.sample_rate, self.config.length_wav, self.hop_samples(hop),
                              min_prob, top_k, inputs.name(path), on_window, share_steps,
                              self.window_batch)

    def hop_samples(self, hop: float | None) -> int | None:
        """A hop in seconds as this model's samples, checked (:func:`timeline.hop_samples`)."""
        return hop_samples(hop, self.sample_rate, self.config.length_wav)

    @checked_arguments
    def evaluate(self, data: str | Path | None = None, fold: int | None = None,
                 allow_changed_data: bool = False, warn: Log = print,
                 training_clips: bool = False) -> dict[str, Any]:
        """Accuracy, macro F1, per-class precision/recall and the confusion matrix, on the run's
        recorded validation split (default) or on ``fold`` of ``data`` (``esc50 evaluate``),
        only on clips the model (an ensemble: any of its models) never trained on, unless
        ``training_clips`` (the figures are then labelled training accuracy)."""
        key = (str(data) if data else None, fold, allow_changed_data, training_clips)
        if key not in self._reports:
            report = evaluate_runs(self.runs, self.registry, str(data) if data else None, fold,
                                   allow_changed_data, warn, training_clips)
            self._reports[key] = {"checkpoint": self.description, **report}
        return self._reports[key]

    @checked_arguments
    def confusion_matrix(self, data: str | Path | None = None, fold: int | None = None
                         ) -> np.ndarray:
        """Counts [true class, predicted class] of :meth:`evaluate`."""
        return np.array(self.evaluate(data, fold)["confusion_matrix"])

    @checked_arguments
    def plot_confusion(self, data: str | Path | None = None, fold: int | None = None) -> Figure:
        """The row-normalised confusion matrix with class names."""
        report = self.evaluate(data, fold)
        return confusion_figure(np.array(report["confusion_matrix"]), self.class_names,
                                f"epoch {report['epoch']} on {report['selection']}")

    @checked_arguments
    def export(self, fmt: str, out: str | Path | None = None, quantize: str | None = None,
               data: str | Path | None = None, hop: float | None = None,
               log: Log = print) -> tuple[Path, Path]:
        """Write this model (an ensemble as one file) as a file that takes a mono waveform of any
        length (shorter than a window: padded as predict pads) at its sample rate and returns the
        probabilities of each window (every ``hop`` seconds; half a window by default) and their
        mean, featurizer and normalization included: ``fmt`` is ``"onnx"`` or ``"torchscript"``;
        ``quantize="int8"`` (ONNX) quantizes it, calibrated on training clips of ``data`` (the run's
        data by default); ``out`` defaults to ``model.<ext>`` (``model.int8.onnx``) in the run
        folder (for a trained model named by name: ``<name>.<ext>`` in the current folder). Returns
        the file and its JSON side file (class names, rate, window, hop)."""
        if self.trained:  # shipped inside a package: written here, named for the model
            default = Path(default_name(fmt, quantize, self.trained.name))
        else:
            folder = self.path if self.path.is_dir() else self.path.parent
            default = folder / default_name(fmt, quantize)
        path = Path(out) if out else default
        return export_runs(self.runs, fmt, path, self.registry, quantize,
                           str(data) if data else None, self.description,
                           self.hop_samples(hop), log)

    def _single(self) -> LoadedRun:
        if self.is_ensemble:
            raise Esc50Error(f"{self.description} has one classifier and checkpoint per "
                             "model: see Model.runs")
        return self.runs[0]

    def _sample_clips(self, audio: np.ndarray | torch.Tensor, sample_rate: int | None,
                      method: str) -> list[Iterator[torch.Tensor]]:
        """Samples ``[T]`` or ``[N, T]`` at ``sample_rate`` as mono blocks at the model's rate,
        one clip per row."""
        if sample_rate is None:
            raise Esc50Error(f"{method}(samples) needs sample_rate= (the rate of the samples "
                             f"given; the model resamples them to {self.sample_rate} Hz)")
        if isinstance(audio, torch.Tensor):
            if audio.device.type == "meta":
                raise Esc50Error(f"{method}(samples): a tensor on the meta device holds no "
                                 "values (only a shape): give samples on the CPU or a GPU")
            audio = audio.detach().cpu().numpy()
        samples = torch.from_numpy(float_samples(np.asarray(audio), "the samples"))
        if samples.dim() not in (1, 2):
            raise Esc50Error(f"{method}(samples) takes [T] or [N, T] samples, not shape "
                             f"{tuple(samples.shape)}")
        clips = [samples] if samples.dim() == 1 else list(samples)
        return [mono_blocks([(clip.numpy()[:, None], sample_rate)], self.sample_rate,
                            "the samples") for clip in clips]

    def __repr__(self) -> str:
        if self.is_ensemble:
            return (f"Model({self.description}, {self.config.model}, "
                    f"{len(self.class_names)} classes)")
        return (f"Model({str(self.path)!r}, {self.config.model}, epoch {self.state['epoch']}, "
                f"{len(self.class_names)} classes)")


@checked_arguments
def load(run_or_checkpoint: str | Path, checkpoint: str = "last",
         registry: Registry | None = None, warn: Log = print) -> Model:
    """The classifier of a run folder (its final epoch, or ``checkpoint="best"``) or of a
    checkpoint file; of a cross-validation folder, its fold models as one ensemble; or a
    trained model a plugin ships, by name (``esc50.load("esc50-rescnn")``; ``esc50 weights
    list`` shows them)."""
    return Model(run_or_checkpoint, checkpoint, registry or load_registry(), warn)


def _given(**named: Any) -> dict[str, Any]:
    """The named arguments that were given (not None)."""
    return {k: v for k, v in named.items() if v is not None}


def _fit(trainer: Trainer) -> Run:
    run_dir = trainer.fit()
    trainer.close()
    return Run.open(run_dir)


def registry_with_warnings(log: Log = print) -> Registry:
    """The plugin registry, with a warning line per broken plugin."""
    registry = load_registry()
    for line in registry.problems + registry.warnings:
        log(f"warning: {line}")
    return registry
