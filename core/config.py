"""TaskConfig: every knob of the report's TaskConfig (same defaults) plus what the trainer needs.

Load from TOML or YAML with :func:`load_config`, override with :meth:`TaskConfig.override`
(strings from the command line are converted to each field's type), save with :func:`save_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from esc50.core.errors import Esc50Error


@dataclass
class TaskConfig:
    """All settings of a run. The first block holds the report's knobs with its defaults."""

    # --- the report's TaskConfig -------------------------------------------------------------
    keyword: str = "*-*-*-*.*"  # glob for clips (the report's '?-*-*.wav', any audio extension)
    batch_size: int = 128
    learning_rate: float = 3e-4
    weight_decay: float = 1e-5
    num_epochs: int = 20  # the report's experiments use 10
    n_mels: int = 64
    cnn_out_channels: int = 8
    kernel_size: tuple[int, int] = (5, 20)
    stride: tuple[int, int] = (2, 8)
    hidden_size: int = 64
    gru_num_layers: int = 2
    bidirectional: bool = False
    num_classes: int = 50
    sample_rate: int = 44_100
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    device: str = "auto"  # "auto": cuda when available, else cpu
    path2noise: str | None = None  # folder of background-noise recordings for the `noise` aug
    train_ratio: float = 0.9
    length_wav: int = 220_500  # samples per clip after padding/cropping (5 s at 44.1 kHz)

    # --- what the toolkit adds ---------------------------------------------------------------
    data: str | None = None  # dataset folder; else $ESC50_DATA, else the default cache folder
    model: str = "plugins.crnn"
    featurizer: str = "plugins.logmel"
    pretrained: bool = False  # models that offer it start from pre-trained weights (vgg19)
    weights: str | None = None  # a local state dict (or esc50 checkpoint) to start the model from
    augs: list[str] = field(default_factory=list)  # e.g. ["noise:min_snr_db=5,p=0.5"]
    aug_policy: str = "all"  # "all": each aug with its own p; "one-of": one aug per clip
    split: str = "fold"  # "fold": official folds; "random": the report's train_ratio split
    val_fold: int = 5
    seed: int = 0
    skip_bad_files: bool = False  # leave out unreadable or silent clips with a warning
    num_workers: int = 0  # decoded audio is cached in memory, so loading needs no workers
    output_dir: str = "runs"
    run_name: str | None = None  # default: <time>-<model name>
    normalize: bool = True  # per-frequency feature normalization (training-clip statistics)
    audio_cache: str | None = None  # folder of an on-disk decoded-audio cache; None: in memory
    cache_features: bool = True  # featurize once when no waveform augmentation is active
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    channels_last: bool = True  # convolution weights and 4-D inputs in channels-last layout
    compile: bool = False  # torch.compile the model for training steps (slow start, faster steps)
    scheduler: str = "cosine"  # "cosine" (per step, to zero) or "none"
    warmup_epochs: float = 0.0  # linear learning-rate warm-up before the schedule
    label_smoothing: float = 0.0  # of the training cross-entropy (validation loss is plain)
    ema_decay: float = 0.0  # > 0: validate and save an exponential moving average of weights
    progress: bool = True

    @property
    def length(self) -> int:
        """Mel frames of a clip of ``length_wav`` samples (the report's ``length``, 862)."""
        return self.length_wav // self.hop_length + 1

    def override(self, **changes: Any) -> TaskConfig:
        """A copy with ``changes`` applied; string values are converted to the field's type."""
        known = {f.name: f for f in dataclasses.fields(self)}
        converted = {}
        for key, value in changes.items():
            if key not in known:
                raise Esc50Error(f"unknown config key {key!r}{_suggest(key, known)}")
            converted[key] = _convert(key, value, _field_types()[key])
        return dataclasses.replace(self, **converted).validated()

    def validated(self) -> TaskConfig:
        """Return self after checking that the settings can work together."""
        positive = ["batch_size", "num_epochs", "n_mels", "cnn_out_channels", "hidden_size",
                    "gru_num_layers", "num_classes", "sample_rate", "n_fft", "win_length",
                    "hop_length", "length_wav"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise Esc50Error(f"config {name}={getattr(self, name)} must be positive")
        if self.learning_rate <= 0:
            raise Esc50Error(f"config learning_rate={self.learning_rate} must be positive")
        if self.weight_decay < 0:
            raise Esc50Error(f"config weight_decay={self.weight_decay} must not be negative")
        if self.win_length > self.n_fft:
            raise Esc50Error(f"config win_length={self.win_length} exceeds n_fft={self.n_fft}")
        if self.n_mels > self.n_fft // 2 + 1:
            raise Esc50Error(f"config n_mels={self.n_mels} exceeds the n_fft // 2 + 1 = "
                             f"{self.n_fft // 2 + 1} frequency bins that n_fft={self.n_fft} gives")
        if self.split not in ("fold", "random"):
            raise Esc50Error(f"config split={self.split!r} must be 'fold' or 'random'")
        if not 0.0 < self.train_ratio < 1.0:
            raise Esc50Error(f"config train_ratio={self.train_ratio} must be between 0 and 1")
        if self.aug_policy not in ("all", "one-of"):
            raise Esc50Error(f"config aug_policy={self.aug_policy!r} must be 'all' or 'one-of'")
        if self.scheduler not in ("cosine", "none"):
            raise Esc50Error(f"config scheduler={self.scheduler!r} must be 'cosine' or 'none'")
        if not 0.0 <= self.warmup_epochs <= self.num_epochs:
            raise Esc50Error(f"config warmup_epochs={self.warmup_epochs} must be between 0 and "
                             f"num_epochs={self.num_epochs}")
        for name in ("label_smoothing", "ema_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise Esc50Error(f"config {name}={getattr(self, name)} must be in [0, 1)")
        if self.num_workers < 0:
            raise Esc50Error(f"config num_workers={self.num_workers} must not be negative")
        for name in ("kernel_size", "stride"):
            value = getattr(self, name)
            if len(value) != 2 or min(value) <= 0:
                raise Esc50Error(f"config {name}={list(value)} must be two positive integers")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-friendly values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def load_config(path: str | Path, **overrides: Any) -> TaskConfig:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file of TaskConfig keys."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise Esc50Error(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            raise Esc50Error(f"config file {path}: unknown format (use .toml, .yaml or .yml)")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise Esc50Error(f"config file {path}: {' '.join(str(exc).split())}") from exc
    if not isinstance(values, dict):
        raise Esc50Error(f"config file {path}: expected a table of keys, got {type(values).__name__}")
    try:
        return TaskConfig().override(**{**values, **overrides})
    except Esc50Error as exc:
        raise Esc50Error(f"config file {path}: {exc}") from exc


def recipe_path(name: str) -> Path:
    """The TOML file of a built-in training recipe (``esc50/recipes/<name>.toml``)."""
    folder = Path(str(resources.files("esc50") / "recipes"))
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.toml"))) or "none"
        raise Esc50Error(f"unknown recipe {name!r} (recipes: {known})")
    return path


def save_config(config: TaskConfig, path: Path) -> None:
    """Write the config as TOML that :func:`load_config` reads back to an equal config."""
    lines = []
    for key, value in config.to_dict().items():
        if value is not None:  # TOML has no null: an absent key means the default (None)
            lines.append(f"{key} = {_toml_value(value)}")
    path.write_text("\n".join(lines) + "\n")


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


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _convert(key: str, value: Any, kind: Any) -> Any:
    """Convert ``value`` (a string from the command line, or a parsed TOML/YAML value)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):  # `X | None`
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        return _convert(key, value, next(a for a in args if a is not type(None)))
    if origin in (tuple, list):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise Esc50Error(f"config {key}={value!r}: expected a list")
        converted = [_convert(key, v, args[0]) for v in items if v != ""]
        return tuple(converted) if origin is tuple else converted
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise Esc50Error(f"config {key}={value!r}: expected true or false")
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise Esc50Error(f"config {key}={value!r}: expected {kind.__name__}") from None
