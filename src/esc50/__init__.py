"""esc50: a pluggable PyTorch toolkit for environmental sound classification.

The Python API (see docs/python-api.md)::

    import esc50
    run = esc50.train(model="plugins.crnn", augs=["noise"], data="path/to/ESC-50", epochs=10)
    esc50.load(run.run_dir).predict("clip.wav")

Everything a plugin needs is importable from here too (see docs/plugins.md, "Reference for
authors")::

    from esc50 import Augmentation, TaskConfig, hookimpl, uniform

These names stay where they are across releases: the modules behind them may move. They are
imported on first use, so ``import esc50`` (and the command line) stays quick.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from esc50.core.cpu_threads import spin_briefly

spin_briefly()  # before torch is imported: libgomp reads it once, when torch loads it

try:
    __version__ = version("esc50")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

_API = "esc50.commands.api"
_CONTRACTS = "esc50.core.plugin_api.contracts"
_TESTING = "esc50.testing"
# name -> module it lives in
_NAMES = {
    # the Python API
    "train": _API, "resume": _API, "cv": _API, "load": _API, "list_plugins": _API,
    "config": _API, "Run": _API, "CrossValidation": _API, "Model": _API, "tune": _API,
    "Prediction": "esc50.commands.predict", "Timeline": "esc50.commands.timeline",
    "analyze": "esc50.commands.analyze.run",
    # shared by both
    "TaskConfig": "esc50.core.config", "Esc50Error": "esc50.core.errors",
    # the plugin surface: hooks, contracts (base classes), helpers, testing
    "hookimpl": "esc50.core.plugin_api.hookspecs",
    "PLUGIN_API_VERSION": "esc50.core.plugin_api.hookspecs",
    "Augmentation": _CONTRACTS, "BatchAugmentation": _CONTRACTS, "Featurizer": _CONTRACTS,
    "PowerFeaturizer": _CONTRACTS, "DatasetReader": _CONTRACTS, "Clip": _CONTRACTS,
    "ClipTable": _CONTRACTS, "Logger": _CONTRACTS, "RunStart": _CONTRACTS,
    "Randomness": _CONTRACTS, "to_device": _CONTRACTS, "uniform": _CONTRACTS,
    "check_range": _CONTRACTS, "check_min_max": _CONTRACTS, "frame_mask": _CONTRACTS,
    "whole_clips": _CONTRACTS,
    "list_files": "esc50.core.data.clips", "read_table": "esc50.core.files.read",
    "AUDIO_EXTENSIONS": "esc50.core.data.clips", "check_unique_stems": "esc50.core.data.clips",
    "describe_unused": "esc50.core.data.clips", "named_as_audio": "esc50.core.data.clips",
    "Registry": "esc50.core.plugin_api.registry",
    "load_registry": "esc50.core.plugin_api.registry",
    "check_model": _TESTING, "check_augmentation": _TESTING, "check_featurizer": _TESTING,
    "check_dataset": _TESTING, "check_logger": _TESTING,
}
__all__ = ["__version__", "plugins", *_NAMES]


def __getattr__(name: str) -> Any:
    if name == "plugins":  # the built-in plugins' package
        return import_module("esc50.plugins")
    if name in _NAMES:
        return getattr(import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'esc50' has no attribute {name!r}")
