"""Plugin hook specifications.

A plugin is a module named by an entry point in the ``esc50`` group. It implements any of the
hooks below with the ``hookimpl`` marker; each hook receives a ``register`` callback::

    from esc50.core.plugin_api.hookspecs import hookimpl

    @hookimpl
    def register_models(register):
        register(MyModel)              # id: <plugin namespace>.<MyModel.name>

``register(factory, name=None, description=None)``: ``factory`` is a class or function, ``name``
defaults to ``factory.name`` (else ``factory.__name__`` lower-cased) and ``description`` to the
first line of its docstring. See docs/plugins.md for what each kind of factory must return.
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT_NAME = "esc50"
# Bumped when a hook or a component contract changes incompatibly. A plugin module may declare
# ``ESC50_PLUGIN_API = <int>``; a plugin declaring another version is refused.
PLUGIN_API_VERSION = 4  # 2 (esc50 0.2): augmentations implement sample/apply; stage "features"
# 3: the STFT/mel knobs (n_fft, win_length, hop_length, n_mels) are featurizer options, no
# longer TaskConfig fields; a featurizer may set ``min_samples``
# 4: an augmentation's per-example draws (``chosen``, ``params``) are CPU tensors when training on
# a GPU; ``apply`` moves them (``to_device``)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., None]


@hookspec
def register_models(register: Register) -> None:
    """Register model factories: ``factory(config, input_shape, **options) -> nn.Module``."""


@hookspec
def register_augmentations(register: Register) -> None:
    """Register augmentation factories: ``factory(config, **options) -> Augmentation``."""


@hookspec
def register_featurizers(register: Register) -> None:
    """Register featurizer factories: ``factory(config, **options) -> Featurizer``."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset factories: ``factory(config, **options) -> DatasetReader``."""


@hookspec
def register_loggers(register: Register) -> None:
    """Register logger factories: ``factory(config, **options) -> Logger``."""


@hookspec
def register_weights(register: Register) -> None:
    """Register published weight files by name: ``register(name, file, urls, size=None,
    checksum=None, licence="", citation="")``; an option named ``checkpoint`` given that name
    (``checkpoint=cnn14``) receives the file's path, fetched into the cache and verified."""


@hookspec
def register_trained_models(register: Register) -> None:
    """Register trained models a user can name instead of a run folder (``esc50 predict NAME
    clip.wav``, ``esc50.load(NAME)``): ``register(name, path, checksum, description="",
    licence="")``. ``path`` is an esc50 checkpoint file shipped in the plugin's package
    (``esc50 package`` writes one from a run), ``checksum`` its ``"sha256:<hex>"``, checked
    before every use, and ``licence`` that of the weights (say so when the training data
    restricts their use)."""
