"""esc50: a pluggable PyTorch toolkit for environmental sound classification.

The Python API (see docs/python-api.md)::

    import esc50
    run = esc50.train(model="plugins.crnn", augs=["noise"], data="path/to/ESC-50", epochs=10)
    esc50.load(run.run_dir).predict("clip.wav")

Its names are imported on first use, so ``import esc50`` (and the command line) stays quick.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("esc50")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

_API = {"train": "esc50.core.api", "resume": "esc50.core.api", "cv": "esc50.core.api",
        "load": "esc50.core.api", "list_plugins": "esc50.core.api", "config": "esc50.core.api",
        "plugins": None,  # the built-in plugins' package, callable: esc50.plugins(kind=None)
        "Run": "esc50.core.api", "CrossValidation": "esc50.core.api", "Model": "esc50.core.api",
        "Prediction": "esc50.core.predict", "TaskConfig": "esc50.core.config",
        "Esc50Error": "esc50.core.errors"}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name == "plugins":
        return import_module("esc50.plugins")
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'esc50' has no attribute {name!r}")
