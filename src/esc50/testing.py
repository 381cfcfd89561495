"""Contract checks for plugin authors' own tests.

    from esc50.testing import check_augmentation, check_featurizer, check_model

    def test_my_plugins_keep_their_contracts():
        check_model("mytools.resnet")
        check_augmentation("mytools.reverb:p=1")
        check_featurizer("mytools.cqt")

Each builds the plugin from its id (through the installed entry points, or ``registry``) into a
small run on generated tone clips (4 classes, 1 s at 8 kHz) and runs the set-up pass every
``esc50 train`` runs: a batch through the augmentations, the featurizer and the model, each
output checked against its contract. A broken contract raises :class:`esc50.Esc50Error` with the
one-line message a user would see; ``settings`` are TaskConfig keys for the run
(``batch_size=4``, or ``**{"plugins.logmel.n_mels": 40}`` for a plugin's option).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from esc50.core.config import TaskConfig
from esc50.core.registry import Registry, load_registry
from esc50.core.trainer import Trainer

RATE = 8000
# STFT and mel options for 1 s clips at 8 kHz (the built-in mel featurizers' option names)
SMALL_STFT = {"n_fft": 256, "win_length": 256, "hop_length": 64, "n_mels": 32}
FREQUENCIES = (300.0, 700.0, 1500.0, 3000.0)


def check_model(spec: str, registry: Registry | None = None, **settings: Any) -> None:
    """Check a model plugin (with ``plugins.logmel`` features unless ``featurizer`` is set)."""
    _set_up({"model": spec, **settings}, registry)


def check_augmentation(spec: str, registry: Registry | None = None, **settings: Any) -> None:
    """Check an augmentation plugin (use ``p=1`` in ``spec`` so it transforms every clip)."""
    _set_up({"augs": [spec], **settings}, registry)


def check_featurizer(spec: str, registry: Registry | None = None, **settings: Any) -> None:
    """Check a featurizer plugin (with ``plugins.crnn`` unless ``model`` is set)."""
    _set_up({"featurizer": spec, **settings}, registry)


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


def _set_up(settings: dict[str, Any], registry: Registry | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = dict(data=str(write_tones(Path(tmp))), sample_rate=RATE, length_wav=RATE,
                    options={"plugins.logmel": SMALL_STFT}, batch_size=8,
                    val_fold=1, progress=False, output_dir=str(Path(tmp) / "runs"))
        config = TaskConfig().override(**base).override(**settings)
        Trainer(config, registry or load_registry(), log=lambda _: None)  # runs the set-up pass
