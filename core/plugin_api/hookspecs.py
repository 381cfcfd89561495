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

ENTRY_POINT_GROUP = PROJECT_NAME  # the entry-point group plugin modules are named in
# The hook of each kind of component, and the hooks that register data, not components.
KINDS = {"model": "register_models", "augmentation": "register_augmentations",
         "featurizer": "register_featurizers", "dataset": "register_datasets",
         "logger": "register_loggers"}
WEIGHTS_HOOK, TRAINED_HOOK = "register_weights", "register_trained_models"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., None]


@hookspec
def register_models(register: Register) -> None:
    """Register model factories.

    Args:
        register: ``register(factory, name=None, description=None)``, called once per model.
            ``factory([config,] input_shape, **options) -> nn.Module``: ``config`` is the run's
            :class:`TaskConfig` (given only when the signature names a ``config`` parameter;
            ``config.num_classes`` is the number of outputs), ``input_shape`` the featurizer's
            ``(channels, frequency bins, frames)`` for one clip, ``options`` the plugin's own
            keyword options (typed by their annotations; ``--set ID.OPTION=VALUE``).

    The module is called as ``model(features [B, C, F, T], frame_lengths [B]) -> logits
    [B, classes]`` (float32 or bf16 under autocast), by the trainer each step, by validation
    and by every scoring of clips. Called once, when the registry loads the plugin."""


@hookspec
def register_augmentations(register: Register) -> None:
    """Register augmentation factories.

    Args:
        register: ``register(factory, name=None, description=None)``.
            ``factory([config,] **options) -> Augmentation`` (a :class:`BatchAugmentation` for
            ones that mix examples); ``config`` only where the signature asks for it.

    The trainer calls ``sample(batch, generator)`` then ``apply(x, chosen, params,
    generator)`` on each training batch at the augmentation's ``stage`` ("wave" [B, T]
    samples, "power" [B, F, T] mel power, "features" [B, C, F, T] normalized features); never
    in validation or prediction."""


@hookspec
def register_featurizers(register: Register) -> None:
    """Register featurizer factories.

    Args:
        register: ``register(factory, name=None, description=None)``.
            ``factory([config,] **options) -> Featurizer``; ``config`` (its ``sample_rate``,
            ``length_wav``) only where the signature asks for it.

    The featurizer is called as ``featurizer(wav [B, T] float32 in [-1, 1], lengths [B]) ->
    (features [B, C, F, T], frame_lengths [B])``, once per clip when features are cached, per
    batch otherwise, and in prediction per window; ``output_shape(samples)`` must give the
    ``(C, F, T)`` it returns for ``samples`` samples."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset factories.

    Args:
        register: ``register(factory, name=None, description=None)``.
            ``factory([config,] **options) -> DatasetReader``; ``config`` only where the
            signature asks for it.

    ``reader.read(root) -> ClipTable`` is called once per experiment (before any audio is
    decoded): every clip's path, class, fold and recording, the class names, the dataset's
    sample rate and clip length in seconds, and its licence."""


@hookspec
def register_loggers(register: Register) -> None:
    """Register logger factories.

    Args:
        register: ``register(factory, name=None, description=None)``.
            ``factory([config,] **options) -> Logger``; ``config`` only where the signature
            asks for it.

    On the main process only, a logger gets ``start(RunStart)``, ``step(step, values)`` every
    few optimizer steps, ``epoch(row)`` after each epoch (the history row), ``figure(name,
    figure, epoch)``, ``audio(...)`` for the worst-classified clips at the end, then
    ``end(metrics)``; a logger that raises is disabled, never the run."""


@hookspec
def register_weights(register: Register) -> None:
    """Register published weight files by name.

    Args:
        register: ``register(name, file, urls, size=None, checksum=None, licence="",
            citation="")``: ``file`` the plain file name in the cache, ``urls`` where it is
            published (tried in turn), ``size`` in bytes and ``checksum`` (``"sha256:<hex>"``
            or ``"md5:<hex>"``) where published.

    An option named ``checkpoint`` given that name (``checkpoint=cnn14``) receives the file's
    path, fetched into the cache the first time and verified before every use."""


@hookspec
def register_trained_models(register: Register) -> None:
    """Register trained models a user can name instead of a run folder.

    Args:
        register: ``register(name, path, checksum, description="", licence="")``: ``path``
            an esc50 checkpoint file shipped in the plugin's package (``esc50 package`` writes
            one from a run), ``checksum`` its ``"sha256:<hex>"``, checked before every use,
            ``licence`` that of the weights (say so when the training data restricts their
            use).

    ``esc50 predict NAME clip.wav``, ``evaluate``, ``export``, ``analyze`` and
    ``esc50.load(NAME)`` load it; a path that exists wins over a name."""
