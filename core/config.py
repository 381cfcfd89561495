"""TaskConfig: every knob of the report's TaskConfig (same defaults) plus what the trainer needs.

Load from TOML or YAML with :func:`load_config`, override with :meth:`TaskConfig.override`
(strings from the command line are converted to each field's type), save with :func:`save_config`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from esc50.core.convert import convert
from esc50.core.errors import Esc50Error, did_you_mean
from esc50.core.files.read import read_text
from esc50.core.files.write import plain_name, write_text


# The report's knobs that became plugin options, each with the last plugin API whose config
# still had it, its value then (the report's) and its type (what an old plugin reading it gets:
# esc50.core.plugin_api.adapters), and the plugins that take it now (so that an old config or
# habit gets a pointer instead of "unknown key").
MOVED_TO_PLUGINS: dict[str, tuple[int, Any, Any, str]] = {
    "cnn_out_channels": (1, 8, int, "plugins.crnn, plugins.baseline"),
    "kernel_size": (1, (5, 20), tuple[int, ...], "plugins.crnn"),
    "stride": (1, (2, 8), tuple[int, ...], "plugins.crnn"),
    "hidden_size": (1, 64, int, "plugins.crnn, plugins.lstm"),
    "gru_num_layers": (1, 2, int, "plugins.crnn"),
    "bidirectional": (1, False, bool, "plugins.crnn"),
    "pretrained": (1, False, bool, "plugins.vgg19"),
    "path2noise": (1, None, str | None, "plugins.noise (as `path`)"),
    "n_fft": (2, 1024, int, "plugins.logmel, plugins.mfcc"),
    "win_length": (2, 1024, int, "plugins.logmel, plugins.mfcc"),
    "hop_length": (2, 256, int, "plugins.logmel, plugins.mfcc"),
    "n_mels": (2, 64, int, "plugins.logmel, plugins.mfcc"),
}
POLICIES = ("all", "one-of")  # how a stage's augmentations apply (esc50.core.training.stages)
OPTIMIZERS = ("adam", "adamw", "sgd")
SPLITS = ("auto", "fold", "random", "all")  # esc50.core.data.split


@dataclass
class TaskConfig:
    """All settings of a run. The first block holds the report's knobs with its defaults."""

    # --- the report's TaskConfig -------------------------------------------------------------
    # (its model knobs, cnn_out_channels, kernel_size, stride, hidden_size, gru_num_layers and
    # bidirectional, are options of the model plugins; its STFT and mel knobs, n_fft,
    # win_length, hop_length and n_mels, of the featurizer plugins; its path2noise is
    # plugins.noise's `path`; recipes/report.toml sets them all under the report's names)
    keyword: str = "*-*-*-*.*"  # glob for clips (the report's '?-*-*.wav', any audio extension)
    batch_size: int = 128
    learning_rate: float = 3e-4
    weight_decay: float = 1e-5
    num_epochs: int = 20  # the report's experiments use 10
    num_classes: int | None = None  # None: the dataset's (ESC-50: 50); set, it must agree
    sample_rate: int | None = None  # None: the dataset's default (ESC-50: 44 100)
    device: str = "auto"  # "auto": cuda when available, else cpu
    train_ratio: float = 0.9
    length_wav: int | None = None  # samples per clip after padding/cropping; None: the
    # dataset's clip length at sample_rate (ESC-50: 220 500, 5 s at 44.1 kHz)

    # --- what the toolkit adds ---------------------------------------------------------------
    data: str | None = None  # dataset folder; else $ESC50_DATA, else the default cache folder
    dataset: str = "plugins.esc50"  # the dataset plugin that reads the folder
    model: str = "plugins.crnn"
    featurizer: str = "plugins.logmel"
    weights: str | None = None  # a local state dict (or esc50 checkpoint) to start the model from
    augs: list[str] = field(default_factory=list)  # e.g. ["noise:min_snr_db=5,p=0.5"]
    loggers: list[str] = field(default_factory=list)  # e.g. ["tensorboard"]; besides history.csv
    # plugin options by plugin id: a config file's tables ([plugins.crnn] hidden_size = 128) or
    # --set plugins.crnn.hidden_size=128; options in an id's spec (plugins.crnn:hidden_size=128)
    # take precedence
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    aug_policy: str = "all"  # "all": each aug with its own p; "one-of": one aug per clip
    split: str = "auto"  # "fold": official folds; "random": grouped train_ratio split;
    # "auto": "fold" when the dataset has folds, else "random"; "all": every clip trains and
    # none is held out (a final model, whose estimate is a cross-validation of its settings)
    val_fold: int = 5
    ignore_folds: list[int] = field(default_factory=list)  # folds left out of the run entirely
    # (neither trained on nor scored): an outer test fold while settings are chosen on the others
    k_folds: int = 0  # > 0: give a dataset without folds this many (esc50 cv --k)
    seed: int = 0
    skip_bad_files: bool = False  # leave out unreadable or silent clips with a warning
    num_workers: int = 0  # decoded audio is cached in memory, so loading needs no workers
    output_dir: str = "runs"
    run_name: str | None = None  # default: <time>-<model name>
    normalize: bool = True  # per-frequency feature normalization (training-clip statistics)
    audio_cache: str | None = None  # folder of an on-disk decoded-audio cache; None: in memory
    cache_features: bool = True  # featurize once when no waveform augmentation is active
    amp: bool = True  # bf16 autocast on CUDA
    cpu_amp: bool = False  # bf16 autocast on a CPU too, where it has bf16 instructions (AVX-512
    # BF16 or AMX: about 2x faster convolutions); ignored on other CPUs, where it is slower
    optimizer: str = "adam"  # "adam" (the report's; weight_decay as L2), "adamw", "sgd"
    channels_last: bool = True  # convolution weights and 4-D inputs in channels-last layout
    compile: bool = False  # torch.compile the model for training steps (slow start, faster steps)
    accumulate: int = 0  # micro-batches a step of batch_size clips is split into, gradients
    # accumulated; 0: as many as memory needs (1 when the step fits; the run records the number)
    scheduler: str = "cosine"  # "cosine" (per step, to zero) or "none"
    warmup_epochs: float = 0.0  # linear learning-rate warm-up before the schedule
    label_smoothing: float = 0.0  # of the training cross-entropy (validation loss is plain)
    ema_decay: float = 0.0  # > 0: validate and save an exponential moving average of weights
    progress: bool = True

    def for_dataset(self, class_names: list[str], sample_rate: int, clip_seconds: float
                    ) -> TaskConfig:
        """This config with what it leaves to the dataset filled in: ``num_classes``,
        ``sample_rate`` and ``length_wav`` (the dataset's clip length at the sample rate)."""
        rate = self.sample_rate or sample_rate
        return self.override(num_classes=len(class_names), sample_rate=rate,
                             length_wav=self.length_wav or round(clip_seconds * rate))

    def override(self, **changes: Any) -> TaskConfig:
        """A copy with ``changes`` applied; string values are converted to the field's type. A key
        ``<plugin id>.<option>`` (``plugins.crnn.hidden_size``) sets a plugin option."""
        known = {f.name: f for f in dataclasses.fields(self)}
        converted: dict[str, Any] = {}
        options = {k: dict(v) for k, v in self.options.items()}
        for key, value in changes.items():
            if key == "options":
                for plugin_id, table in _convert(key, value, dict).items():
                    options.setdefault(plugin_id, {}).update(_convert(plugin_id, table, dict))
            elif key not in known and key.count(".") >= 2:
                plugin_id, _, option = key.rpartition(".")
                options.setdefault(plugin_id, {})[option] = value
            elif key in MOVED_TO_PLUGINS:
                owners = MOVED_TO_PLUGINS[key][3]
                raise Esc50Error(f"config key {key!r} is an option of {owners} now: set it with "
                                 f"--set {owners.split(',')[0]}.{key}=VALUE or in that plugin's "
                                 "table of a config file")
            elif key not in known:
                hint = did_you_mean(key, known)
                raise Esc50Error(f"unknown config key {key!r}" + (f" ({hint})" if hint else ""))
            else:
                converted[key] = setting_value(key, value)
        return dataclasses.replace(self, **converted, options=options).validated()

    def with_options(self, options: dict[str, dict[str, Any]]) -> TaskConfig:
        """A copy whose plugin option tables are ``options`` (already checked and typed)."""
        return dataclasses.replace(self, options={k: dict(v) for k, v in options.items()})

    def validated(self) -> TaskConfig:
        """Return self after checking that the settings can work together."""
        positive = ["batch_size", "num_epochs", "num_classes", "sample_rate", "length_wav"]
        for name in positive:
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise Esc50Error(f"config {name}={getattr(self, name)} must be positive")
        if self.k_folds < 0 or self.k_folds == 1:
            raise Esc50Error(f"config k_folds={self.k_folds} must be 0 (off) or at least 2")
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise Esc50Error(f"config learning_rate={self.learning_rate} must be a positive number")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise Esc50Error(f"config weight_decay={self.weight_decay} must be a number of at "
                             "least 0")
        if not 0 <= self.seed < 2**32:
            raise Esc50Error(f"config seed={self.seed} must be between 0 and 2**32 - 1")
        device = self.device.split(":")[0]
        if device not in ("auto", "cpu", "cuda") or (":" in self.device and (
                device != "cuda" or not self.device.split(":", 1)[1].isdigit())):
            raise Esc50Error(f"config device={self.device!r}: esc50 runs on auto, cpu, cuda or "
                             "cuda:N")
        if self.val_fold in self.ignore_folds and self.split == "fold":
            raise Esc50Error(f"config val_fold={self.val_fold} is also in ignore_folds="
                             f"{self.ignore_folds}: the validation fold must be used")
        if self.split not in SPLITS:
            raise Esc50Error(f"config split={self.split!r} must be one of "
                             f"{', '.join(map(repr, SPLITS))}")
        if not 0.0 < self.train_ratio < 1.0:
            raise Esc50Error(f"config train_ratio={self.train_ratio} must be between 0 and 1")
        if self.aug_policy not in POLICIES:
            raise Esc50Error(f"config aug_policy={self.aug_policy!r} must be one of "
                             f"{', '.join(map(repr, POLICIES))}")
        if self.optimizer not in OPTIMIZERS:
            raise Esc50Error(f"config optimizer={self.optimizer!r} must be one of "
                             f"{', '.join(map(repr, OPTIMIZERS))}")
        if self.scheduler not in ("cosine", "none"):
            raise Esc50Error(f"config scheduler={self.scheduler!r} must be 'cosine' or 'none'")
        if not 0.0 <= self.warmup_epochs <= self.num_epochs:
            raise Esc50Error(f"config warmup_epochs={self.warmup_epochs} must be between 0 and "
                             f"num_epochs={self.num_epochs}")
        for name in ("label_smoothing", "ema_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise Esc50Error(f"config {name}={getattr(self, name)} must be in [0, 1)")
        if self.accumulate < 0:
            raise Esc50Error(f"config accumulate={self.accumulate} must be 0 (planned from "
                             "memory) or a number of micro-batches")
        if self.num_workers < 0:
            raise Esc50Error(f"config num_workers={self.num_workers} must not be negative")
        if self.run_name:  # checked before anything is read or trained
            plain_name(self.run_name, "config run_name", Path(self.output_dir))
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-friendly values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def flat(self) -> dict[str, Any]:
        """:meth:`to_dict` with each plugin option as a key ``<plugin id>.<option>``."""
        values = self.to_dict()
        options = values.pop("options")
        return {**values, **{f"{plugin_id}.{name}": value for plugin_id, table in options.items()
                             for name, value in table.items()}}


def load_config(path: str | Path, **overrides: Any) -> TaskConfig:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file of TaskConfig keys. Whatever is
    wrong with the file (not a regular file, not text, a syntax error, a YAML tag that would
    build a Python object, keys that are not strings, nesting deeper than a config has) is one
    line naming it (and the line, where the parser gives one)."""
    path = Path(path)
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise Esc50Error(f"config file {path}: unknown format (use .toml, .yaml or .yml)")
    text = read_text(path, "config file")
    try:
        values = _parse(text, path.suffix)
    except RecursionError:
        raise Esc50Error(f"config file {path}: nested too deeply to be a config") from None
    except ValueError as exc:  # tomllib's and yaml's errors, with the line
        raise Esc50Error(f"config file {path}: {' '.join(str(exc).split())[:300]}") from None
    if not isinstance(values, dict):
        raise Esc50Error(f"config file {path}: expected a table of keys, got {type(values).__name__}")
    check_keys(values, path)
    # Tables are plugin options: [plugins.crnn] parses as {"plugins": {"crnn": {...}}}.
    tables = {key: values.pop(key) for key in list(values) if isinstance(values[key], dict)}
    options = {f"{namespace}.{name}": table for namespace, names in tables.items()
               for name, table in names.items()}
    if any(not isinstance(t, dict) for t in options.values()) or "options" in values:
        raise Esc50Error(f"config file {path}: plugin options go in a table per plugin id, "
                         "e.g. [plugins.crnn]")
    try:
        from_file = TaskConfig().override(**{**values, "options": options})
    except Esc50Error as exc:
        raise Esc50Error(f"config file {path}: {exc}") from exc
    return from_file.override(**overrides)  # an override's error is not the file's


def _parse(text: str, suffix: str) -> Any:
    """TOML or YAML (safely: no tag builds a Python object); a syntax error is a ValueError."""
    if suffix == ".toml":
        return tomllib.loads(text)
    import yaml

    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None
    return {} if values is None else values


def check_keys(values: dict, path: Path, depth: int = 0) -> None:
    """Every key a string, tables at most three deep (a plugin id's two parts, then its
    options' values)."""
    if depth > 3:
        raise Esc50Error(f"config file {path}: tables nested more than three deep; a config "
                         "holds keys and [namespace.plugin] tables of options")
    for key, value in values.items():
        if not isinstance(key, str):
            raise Esc50Error(f"config file {path}: key {key!r} ({type(key).__name__}) is not a "
                             "name: keys are strings")
        if isinstance(value, dict):
            check_keys(value, path, depth + 1)


def recipe_path(name: str) -> Path:
    """The TOML file of a built-in training recipe (``esc50/recipes/<name>.toml``)."""
    folder = Path(str(resources.files("esc50") / "recipes"))
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.toml"))) or "none"
        raise Esc50Error(f"unknown recipe {name!r} (recipes: {known})")
    return path


def save_config(config: TaskConfig, path: Path) -> None:
    """Write the config as TOML that :func:`load_config` reads back to an equal config: keys,
    then a table of options per plugin id."""
    values = config.to_dict()
    options = values.pop("options")
    lines = _toml_lines(values)
    for plugin_id, table in options.items():
        lines += ["", f"[{plugin_id}]", *_toml_lines(table)]
    write_text(path, "\n".join(lines) + "\n")


def _toml_lines(values: dict[str, Any]) -> list[str]:
    # TOML has no null: an absent key means the default (None)
    return [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TaskConfig)


def setting_value(key: str, value: Any) -> Any:
    """``value`` (a string from the command line, or a parsed TOML/YAML value) as the type of
    TaskConfig's field ``key`` (``"[\"noise\", \"gaussian\"]"`` for ``augs`` is a list); a key
    that is no field (a plugin option) keeps its value."""
    kind = _field_types().get(key)
    return value if kind is None else _convert(key, value, kind)


def _convert(key: str, value: Any, kind: Any) -> Any:
    """Convert ``value`` (a string from the command line, or a parsed TOML/YAML value)."""
    try:
        return convert(value, kind)
    except ValueError as exc:
        raise Esc50Error(f"config {key}={value!r}: expected {exc}") from None
