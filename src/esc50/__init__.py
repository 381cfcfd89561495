"""esc50: a pluggable PyTorch toolkit for environmental sound classification."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("esc50")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
