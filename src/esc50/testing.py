"""Contract checks for plugin authors' own tests (also importable from ``esc50``).

    from esc50 import check_augmentation, check_dataset, check_featurizer, check_logger, \\
        check_model

    def test_my_plugins_keep_their_contracts(tmp_path):
        check_model("mytools.resnet")  # esc50.testing.config(): a config with ESC-50's rate
                                        # and classes, for tests that build a plugin by hand
        check_augmentation("mytools.reverb:p=1")
        check_featurizer("mytools.cqt")
        check_dataset("mytools.sounds", "path/to/a/small/folder")
        check_logger("mytools.mlflow")

The model, augmentation and featurizer checks build the plugin from its id (through the
installed entry points, or ``registry``) into a small run on generated tone clips (4 classes,
1 s at 8 kHz) and put batches through every stage and the model, each output checked against
its contract, as ``esc50 train`` does: the set-up pass's two clips, then batches of 1, 2 and 3
clips of odd, unequal lengths (padded batches), then one epoch of training and validation with
batches of 3, 4 and a last one of 1; a model that pools steps (``step_embeddings`` and
``pool_steps``) must then be its own forward split in two. The dataset check reads a folder
with the plugin, checks every clip it lists and decodes a few; the logger check trains two
epochs with the logger on and fails where the run would have disabled it. A broken contract raises
:class:`esc50.Esc50Error` with the one-line message a user would see; ``settings`` are TaskConfig
keys for the run (``batch_size=4``, or ``**{"plugins.logmel.n_mels": 40}`` for a plugin's
option).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from esc50.core.config import TaskConfig
from esc50.core.data.audio import load_clip
from esc50.core.data.clips import find_clips
from esc50.core.data.collate import collate
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import Registry, load_registry
from esc50.core.training.classifier import Classifier
from esc50.core.training.scoring import check_steps_shape, pools_steps
from esc50.core.training.stages import setup_pass
from esc50.core.training.trainer import Trainer

RATE = 8000
# STFT and mel options for 1 s clips at 8 kHz (the built-in mel featurizers' option names)
SMALL_STFT = {"n_fft": 256, "win_length": 256, "hop_length": 64, "n_mels": 32}
FREQUENCIES = (300.0, 700.0, 1500.0, 3000.0)
ODD_LENGTHS = (RATE, RATE * 3 // 4 + 1, RATE // 2 + 3)  # samples: whole, and two odd cuts


def config(**settings: Any) -> TaskConfig:
    """A TaskConfig with what the dataset would fill in set to ESC-50's (44 100 Hz, 50 classes,
    5-second clips), as ``TaskConfig()`` gave them before plugin API 3: for a plugin's own tests
    that build a config by hand; ``settings`` override any key."""
    return TaskConfig().override(sample_rate=44_100, num_classes=50, length_wav=220_500,
                                 **settings)


def check_model(spec: str, registry: Registry | None = None, **settings: Any) -> None:
    """Check a model plugin (with ``plugins.logmel`` features unless ``featurizer`` is set)."""
    _exercise({"model": spec, **settings}, registry)


def check_augmentation(spec: str, registry: Registry | None = None, **settings: Any) -> None:
    """Check an augmentation plugin (use ``p=1`` in ``spec`` so it transforms every clip)."""
    _exercise({"augs": [spec], **settings}, registry)


def check_featurizer(spec: str, registry: Registry | None = None, **settings: Any) -> None:
    """Check a featurizer plugin (with ``plugins.crnn`` unless ``model`` is set)."""
    _exercise({"featurizer": spec, **settings}, registry)


def check_dataset(spec: str, folder: str | Path, registry: Registry | None = None,
                  decode: int = 3, **settings: Any) -> None:
    """Check a dataset plugin on ``folder``: it finds clips, each an existing regular file with
    an absolute path, a target inside its class names and a fold of at least 0; its class names
    are distinct strings, its default rate and clip length positive; the first ``decode`` clips
    decode."""
    registry = registry or load_registry()
    config = TaskConfig().override(dataset=spec, **settings)
    table = find_clips(Path(folder), config, registry)
    name = f"dataset {spec}"
    if len(set(table.class_names)) != len(table.class_names) or \
            not all(isinstance(c, str) and c for c in table.class_names):
        raise Esc50Error(f"{name}: class_names must be distinct, non-empty strings")
    if not (table.sample_rate > 0 and table.clip_seconds > 0):
        raise Esc50Error(f"{name}: sample_rate and clip_seconds must be positive")
    for clip in table.clips:
        if not (isinstance(clip.path, Path) and clip.path.is_absolute()):
            raise Esc50Error(f"{name}: clip path {clip.path!r} is not an absolute Path")
        if not clip.path.is_file():
            raise Esc50Error(f"{name}: clip {clip.path} is not a regular file")
        if not isinstance(clip.fold, int) or clip.fold < 0 or not isinstance(clip.group, str):
            raise Esc50Error(f"{name}: clip {clip.path} has fold {clip.fold!r} and group "
                             f"{clip.group!r}; expected a whole number >= 0 and a string")
    for clip in table.clips[:decode]:
        load_clip(clip.path, table.sample_rate)


def check_logger(spec: str, registry: Registry | None = None, **settings: Any) -> None:
    """Check a logger plugin: two epochs of a small run with it; a logger event that raised
    (which a run reports and survives by disabling the logger) fails here."""
    failures: list[str] = []

    def log(line: str) -> None:
        if line.startswith("warning: logger"):
            failures.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), {"loggers": [spec], "num_epochs": 2, **settings})
        Trainer(config, registry or load_registry(), log=log).fit()
    if failures:
        raise Esc50Error(failures[0].removeprefix("warning: "))


def write_tones(folder: Path, clips_per_class: int = 2, folds: tuple[int, ...] = (1, 2)) -> Path:
    """A small ESC-50-style folder of noisy tones, one frequency per class."""
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    for fold in folds:
        for target, freq in enumerate(FREQUENCIES):
            for k in range(clips_per_class):
                wav = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.02 * k) * t)
                wav += 0.05 * rng.standard_normal(t.size)
                sf.write(folder / f"{fold}-{fold}{target}{k}-A-{target}.wav",
                         wav.astype(np.float32), RATE)
    return folder


def _config(tmp: Path, settings: dict[str, Any]) -> TaskConfig:
    base = dict(data=str(write_tones(tmp)), sample_rate=RATE, length_wav=RATE,
                options={"plugins.logmel": SMALL_STFT}, batch_size=3, val_fold=1,
                progress=False, output_dir=str(tmp / "runs"))
    return TaskConfig().override(**base).override(**settings)


def _exercise(settings: dict[str, Any], registry: Registry | None) -> None:
    """The set-up pass (building the trainer runs it), padded batches of odd lengths, then one
    epoch (8 training clips in batches of 3, 3 and 2; the trainer drops a last batch of 1, so
    batch size 1 is covered by the padded batches)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), settings)
        trainer = Trainer(config, registry or load_registry(), log=lambda _: None)
        clips = trainer.data.train_audio
        for size in (1, 2, 3):
            batch = collate([{**clips[i], "wav": clips[i]["wav"][:ODD_LENGTHS[i]],
                              "length": min(ODD_LENGTHS[i], clips[i]["length"])}
                             for i in range(size)])
            setup_pass(trainer.stages, batch, trainer.config.num_classes, config.seed + size,
                       trainer.device)
        for training in (True, False):
            trainer.run_epoch(1, training)
        check_steps(trainer.classifier, f"model {config.model}")
        if not all(torch.isfinite(p).all() for p in trainer.state.model.parameters()):
            raise Esc50Error("the model's weights are not finite after one epoch of training")


@torch.no_grad()
def check_steps(classifier: Classifier, name: str) -> None:
    """A model that pools steps (``step_embeddings`` and ``pool_steps``, which ``esc50 analyze``
    uses to score neighbouring windows from one pass) must be its own forward split in two:
    checked on a padded batch of two clips of noise, steps of shape [B, dimensions, steps]."""
    model = classifier.model
    if not pools_steps(model):
        return
    model.eval()
    wav = 0.1 * torch.randn(2, RATE, generator=torch.Generator().manual_seed(0))
    features, frames = classifier.features(wav, torch.tensor([RATE, ODD_LENGTHS[2]]))
    features = classifier.model_input(features)
    steps, lengths = model.step_embeddings(features, frames)
    check_steps_shape(name, steps, lengths, 2)
    gap = float((model.pool_steps(steps, lengths) - model(features, frames)).abs().max())
    if not gap <= 1e-4:
        raise Esc50Error(f"{name}: pool_steps(step_embeddings(...)) differs from the model's "
                         f"forward by {gap:.3g}; they must be its forward split in two")
