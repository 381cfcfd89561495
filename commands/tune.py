"""`esc50 tune`: a search over settings (TaskConfig keys and plugin options) on the training folds
only, with Optuna (``pip install 'esc50[tune]'``).

Nested by construction. With the fold to be reported given (``val_fold``), every trial leaves it
out entirely (``ignore_folds``: its clips are neither decoded nor read) and is scored on an inner
fold of the others (``inner_folds`` of them, averaged); the outer fold is touched once, by the
final run with the chosen settings (:func:`final_run`), which refuses a second look. A dataset
without folds is given ``k`` grouped, stratified folds first (``k_folds``), so the same holds.

Each trial is an ordinary run folder (``<output_dir>/<name>/trial-NNNN[-fold-K]``: config,
split, history), so ``esc50 report`` compares trials. The study lives in a database: a SQLite file
in that folder by default (a crashed search continues when the same command runs again), or any
database URL Optuna accepts (``storage``), which workers on many machines can share
(``esc50 tune --storage URL --name NAME`` on each). ``jobs`` runs that many workers on this
machine as processes of their own. Poor trials are pruned from their per-epoch inner scores
(Optuna's median pruner, after a third of their epochs).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import statistics
import time
import tomllib
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from esc50.commands.workers import ended, quiet_on_ctrl_c, start_quietly
from esc50.core.config import TaskConfig, load_config, save_config
from esc50.core.data.clips import find_clips
from esc50.core.data.location import resolve_data_dir
from esc50.core.errors import Esc50Error, Interrupted
from esc50.core.files.read import read_text
from esc50.core.files.write import StorageError, output_folder, plain_name
from esc50.core.plugin_api.choices import check_options_in_run
from esc50.core.plugin_api.components import parse_spec
from esc50.core.plugin_api.registry import Registry, load_registry
from esc50.core.training.batches import ExperimentData
from esc50.core.training.memory import memory_shares, share_memory
from esc50.core.training.trainer import Trainer

Log = Callable[[str], None]
DECODING_KEYS = {"data", "dataset", "sample_rate", "length_wav", "keyword", "audio_cache"}


@dataclass(frozen=True)
class Dimension:
    """One setting searched: a float or int range (``log``: on a log scale) or choices."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int):
            return trial.suggest_int(self.key, self.low, self.high, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)


def parse_dimension(text: str) -> Dimension:
    """``KEY=low:high[:log]`` (a range) or ``KEY=a|b|c`` (choices)."""
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if not sep or not key or not spec:
        raise Esc50Error(f"--space {text!r}: expected KEY=low:high[:log] or KEY=a|b|c")
    if "|" in spec:
        return Dimension(key, choices=tuple(c.strip() for c in spec.split("|") if c.strip()))
    parts = spec.split(":")
    log = len(parts) == 3 and parts[2] == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise Esc50Error(f"--space {text!r}: expected KEY=low:high[:log] or KEY=a|b|c")
    return range_dimension(key, _number(parts[0], text), _number(parts[1], text), log)


def range_dimension(key: str, low: float, high: float, log: bool) -> Dimension:
    if not low < high or (log and low <= 0):
        raise Esc50Error(f"search range of {key}: expected low < high (and low > 0 on a log "
                         f"scale), got {low}:{high}")
    return Dimension(key, low, high, log)


def _number(text: str, whole: str) -> float | int:
    try:
        return int(text) if text.strip().lstrip("-").isdigit() else float(text)
    except ValueError:
        raise Esc50Error(f"--space {whole!r}: {text!r} is not a number") from None


def read_space(path: str | Path) -> list[Dimension]:
    """A TOML file's ``[space]`` table: ``"KEY" = {low = L, high = H, log = true}`` or
    ``"KEY" = [choice, ...]``."""
    try:
        table = tomllib.loads(read_text(path, "search space file")).get("space")
    except tomllib.TOMLDecodeError as exc:
        raise Esc50Error(f"search space file {path}: {exc}") from None
    if not isinstance(table, dict) or not table:
        raise Esc50Error(f"search space file {path}: expected a [space] table of settings")
    dimensions = []
    for key, value in table.items():
        if isinstance(value, list) and value:
            dimensions.append(Dimension(key, choices=tuple(value)))
        elif isinstance(value, dict) and {"low", "high"} <= value.keys():
            dimensions.append(range_dimension(key, value["low"], value["high"],
                                              bool(value.get("log", False))))
        else:
            raise Esc50Error(f"search space file {path}: {key} must be {{low = ..., high = ...}} "
                             "or a list of choices")
    return dimensions


def with_setting(config: TaskConfig, key: str, value: Any) -> TaskConfig:
    """``config`` with ``key`` set to ``value``: a TaskConfig key, or a plugin option
    ``<plugin id>.<option>``; where the run's spec of that plugin gives the option itself
    (``mixup:alpha=0.3``), the spec is rewritten, since a spec's options win over tables."""
    plugin_id, _, option = key.rpartition(".")
    if key.count(".") < 2:
        return config.override(**{key: value})
    fields = {"dataset": config.dataset, "model": config.model, "featurizer": config.featurizer}
    for field, spec in fields.items():
        if _names_plugin(spec, plugin_id) and option in parse_spec(spec)[1]:
            return config.override(**{field: _respec(spec, option, value)})
    augs = [_respec(s, option, value) if _names_plugin(s, plugin_id)
            and option in parse_spec(s)[1] else s for s in config.augs]
    if augs != config.augs:
        return config.override(augs=augs)
    return config.override(**{key: value})


def _names_plugin(spec: str, plugin_id: str) -> bool:
    name = parse_spec(spec)[0]
    return name == plugin_id or name.rpartition(".")[2] == plugin_id.rpartition(".")[2]


def _respec(spec: str, option: str, value: Any) -> str:
    name, options = parse_spec(spec)
    options[option] = str(value)
    return f"{name}:{','.join(f'{k}={v}' for k, v in options.items())}"


@dataclass
class Search:
    """A study's fixed part: the base config, the outer fold, the inner folds, the space."""

    name: str
    root: Path
    storage: str
    base: TaskConfig
    outer: int
    inner: list[int]
    space: list[Dimension]

    def trial_config(self, values: dict[str, Any], fold: int, number: int) -> TaskConfig:
        config = self.base
        for key, value in values.items():
            config = with_setting(config, key, value)
        return config.override(split="fold", val_fold=fold, progress=False,
                               ignore_folds=sorted({*self.base.ignore_folds, self.outer}),
                               output_dir=str(self.root), run_name=(
                                   f"trial-{number:04d}" + (f"-fold-{fold}"
                                                            if len(self.inner) > 1 else "")))


def prepare(config: TaskConfig, registry: Registry, name: str, space: list[Dimension],
            storage: str | None, inner_folds: int, log: Log) -> Search:
    """The search for ``config`` (its ``val_fold`` is the outer fold): the folds, the study
    folder and its storage."""
    if not space:
        raise Esc50Error("nothing to search: give --space KEY=low:high or a --space-file")
    check_options_in_run(config, [d.key for d in space if d.key.count(".") >= 2])
    for dimension in space:  # a key, or a value at either end, the config refuses fails here
        for value in dimension.choices or (dimension.low, dimension.high):
            with_setting(config, dimension.key, value)
    table = find_clips(resolve_data_dir(config.data), config, registry, log)
    if not table.has_folds:
        config = config.override(k_folds=config.k_folds or 5)
        log(f"{table.root} has no folds: giving it {config.k_folds} grouped, stratified folds "
            f"(seed {config.seed}); fold {config.val_fold} is the outer one")
        table = find_clips(resolve_data_dir(config.data), config, registry, log)
    folds = sorted(set(table.folds) - set(config.ignore_folds))
    if config.val_fold not in folds:
        raise Esc50Error(f"outer fold {config.val_fold} has no clips (folds: "
                         f"{', '.join(map(str, folds))})")
    others = [f for f in folds if f != config.val_fold]
    if not 1 <= inner_folds <= len(others):
        raise Esc50Error(f"--inner-folds {inner_folds}: between 1 and {len(others)} (the folds "
                         "besides the outer one)")
    root = output_folder(Path(config.output_dir) / plain_name(name, "--name",
                                                              Path(config.output_dir)),
                         "study folder")
    storage = check_storage(storage or f"sqlite:///{root.resolve() / 'study.db'}")
    return Search(name, root, storage, config, config.val_fold, others[:inner_folds], space)


def check_storage(storage: str) -> str:
    """``storage`` when it can name a database: a URL (``dialect[+driver]://...``), whose
    SQLite file, if it is one, is in a folder that exists; else a one-line error naming it."""
    dialect, sep, rest = storage.partition("://")
    if not sep or not dialect or not rest:
        raise Esc50Error(f"--storage {storage!r} is not a database URL (for example "
                         "sqlite:///path/to/study.db or postgresql://user@host/db)")
    if dialect.startswith("sqlite"):
        name = rest.removeprefix("/").split("?")[0]
        if name in ("", ":memory:") or "mode=memory" in rest:
            raise Esc50Error(f"--storage {storage}: an in-memory database ends with the process, "
                             "and the study with it: give a file (sqlite:///path/study.db) or "
                             "a database server")
        path = Path(name)
        if not path.parent.is_dir():
            raise Esc50Error(f"--storage {storage}: the folder {path.parent} does not exist")
    return storage


# The tables an Optuna study database holds (Optuna 3 and 4; alembic_version is its schema's).
OPTUNA_TABLES = {"studies", "study_directions", "study_user_attributes",
                 "study_system_attributes", "trials", "trial_user_attributes",
                 "trial_system_attributes", "trial_params", "trial_values",
                 "trial_intermediate_values", "trial_heartbeats", "version_info",
                 "alembic_version"}


def check_foreign_tables(storage: str) -> None:
    """Refuse, before anything is written, a database holding tables Optuna did not make (a
    URL pointing at another program's database would get Optuna's tables added to it)."""
    sqlalchemy = importlib.import_module("sqlalchemy")
    with storage_errors(storage):
        engine = sqlalchemy.create_engine(storage)
        try:
            foreign = sorted(set(sqlalchemy.inspect(engine).get_table_names()) - OPTUNA_TABLES)
        finally:
            engine.dispose()
    if foreign:
        raise Esc50Error(f"--storage {storage}: the database holds tables Optuna did not make "
                         f"({', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''}): "
                         "it belongs to another program; give a database of its own")


@contextmanager
def storage_errors(storage: str) -> Iterator[None]:
    """Turn what the study's database raises (SQLAlchemy, sqlite3, a driver that is not
    installed) into one line naming the storage and what is wrong."""
    try:
        yield
    except Esc50Error:
        raise
    except ImportError as exc:  # Optuna's, raised from the driver's ModuleNotFoundError
        missing = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__ or \
            exc.__context__
        name = getattr(missing, "name", None) or "its driver"
        raise Esc50Error(f"--storage {storage}: its database driver is not installed "
                         f"(no module named {name!r}): pip install it") from None
    except Exception as exc:
        if not from_database_code(exc):
            raise
        reason = " ".join(str(exc).split("[SQL:")[0].split("(Background")[0].split())
        raise Esc50Error(f"--storage {storage}: {reason or type(exc).__name__}") from None


DATABASE_PACKAGES = ("sqlalchemy", "sqlite3", "optuna", "alembic")


def from_database_code(exc: BaseException) -> bool:
    """Whether ``exc`` is the storage's answer (raised by, or inside, Optuna, SQLAlchemy,
    Alembic or sqlite3: a schema newer than the installed Optuna, a storage kind Optuna no
    longer has, a bad connection argument), not a bug of esc50's."""
    if type(exc).__module__.split(".")[0] in DATABASE_PACKAGES:
        return True
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and any(f"{os.sep}{package}{os.sep}" in frames[-1].filename
                                for package in DATABASE_PACKAGES)


def study_storage(search: Search) -> Any:
    """The study's storage: a SQLite file waits up to two minutes for another worker's write."""
    optuna = optuna_module()
    return optuna.storages.RDBStorage(
        search.storage, engine_kwargs={"connect_args": {"timeout": 120}}) \
        if search.storage.startswith("sqlite") else optuna.storages.get_storage(search.storage)


def open_study(search: Search) -> Any:
    optuna = optuna_module()
    check_foreign_tables(search.storage)
    with storage_errors(search.storage):
        study = optuna.create_study(
            study_name=search.name, storage=study_storage(search), direction="maximize",
            load_if_exists=True,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(
                1, search.base.num_epochs // 3)))
        return _checked_study(search, study)


def _checked_study(search: Search, study: Any) -> Any:
    """``study``, refused when it was started with other settings (its first open records
    them)."""
    base = search.base.to_dict()
    recorded = study.user_attrs.get("base")
    if recorded is not None and recorded != base:
        differing = sorted(k for k in base.keys() | recorded.keys()
                           if base.get(k) != recorded.get(k))
        raise Esc50Error(f"study {search.name} in {search.storage} was started with other "
                         f"settings ({', '.join(differing)}): use another --name")
    if recorded is None:
        study.set_user_attr("base", base)
        study.set_user_attr("outer", search.outer)
        study.set_user_attr("inner", search.inner)
    return study


def optuna_module() -> Any:
    try:
        import optuna
    except ImportError:
        raise Esc50Error("esc50 tune needs Optuna: pip install 'esc50[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # esc50 reports each trial itself
    return optuna


class TrialTrainer(Trainer):
    """A trial's run: after each validation epoch its inner score goes to Optuna, which may
    prune the trial."""

    trial: Any = None
    step_offset = 0

    def run_epoch(self, epoch: int, training: bool) -> Any:
        stats = super().run_epoch(epoch, training)
        if not training and self.trial is not None:
            self.trial.report(stats.accuracy, self.step_offset + epoch)
            if self.trial.should_prune():
                raise optuna_module().TrialPruned()
        return stats


def run_trials(search: Search, trials: int, log: Log, worker: str = "") -> None:
    """``trials`` trials of the study in this process (decoded audio shared between them when
    no searched setting changes decoding; features when none changes featurizing either)."""
    study = open_study(search)
    shared = ExperimentData() if not {d.key for d in search.space} & DECODING_KEYS else None
    registry = load_registry()
    featurizer_keys = {d.key for d in search.space
                       if d.key == "featurizer" or d.key.startswith(
                           parse_spec(search.base.featurizer)[0] + ".")}

    def trial_data() -> ExperimentData | None:
        if shared is None:  # decoding itself is searched: each trial decodes its own audio
            return None
        if featurizer_keys:  # the audio is shared, the features are each trial's own
            return ExperimentData(shared.table, shared.digests, shared.audio)
        return shared

    def objective(trial: Any) -> float:
        # the trial's first write names its worker: a worker killed after it (suggesting reads
        # the study, training takes minutes) leaves a trial the command can record as failed
        trial.set_user_attr("worker", worker or str(os.getpid()))
        started = time.perf_counter()
        values = {d.key: d.suggest(trial) for d in search.space}
        scores = []
        try:
            for index, fold in enumerate(search.inner):
                config = search.trial_config(values, fold, trial.number)
                data = trial_data()
                trainer = TrialTrainer(config, registry, log=lambda _: None, shared=data)
                if shared is not None and data is not shared:
                    shared.table, shared.digests, shared.audio = data.table, data.digests, \
                        data.audio
                trainer.trial, trainer.step_offset = trial, index * config.num_epochs
                run = trainer.fit()
                scores.append(trainer.state.history[-1]["val_accuracy"])
                trial.set_user_attr(f"run_fold_{fold}", str(run))
        except (Interrupted, StorageError):  # Ctrl-C, a full disk: the whole study stops
            raise
        except Esc50Error as exc:  # the study goes on; the trial is recorded as failed
            trial.set_user_attr("error", str(exc))
            log(f"{worker}trial {trial.number}: failed: {exc}")
            return float("nan")
        score = statistics.fmean(scores)
        best = score if not _completed(study) else max(score, study.best_value)
        log(f"{worker}trial {trial.number}: inner accuracy {score:.3f} on fold(s) "
            f"{', '.join(map(str, search.inner))} in {time.perf_counter() - started:.0f} s "
            f"({shown(values)}); best so far {best:.3f}")
        return score

    with storage_errors(search.storage):
        study.optimize(objective, n_trials=trials,
                       callbacks=[lambda study, trial: _report_pruned(trial, log, worker)])


def shown(settings: dict[str, Any]) -> str:
    """Settings as a log line gives them (numbers to four significant digits; best.toml keeps
    them whole)."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in settings.items())


def _completed(study: Any) -> bool:
    return any(t.state.name == "COMPLETE" for t in study.trials)


def _report_pruned(trial: Any, log: Log, worker: str) -> None:
    if trial.state.name == "PRUNED":
        log(f"{worker}trial {trial.number}: pruned at step {trial.last_step} (its inner score "
            "fell below the median of earlier trials)")


def tune(search: Search, trials: int, jobs: int, log: Log) -> dict[str, Any]:
    """Run ``trials`` trials (``jobs`` worker processes sharing the study), then summarize."""
    if trials < 1 or jobs < 1:
        raise Esc50Error(f"--trials {trials} and --jobs {jobs} must be at least 1")
    shares = memory_shares() * min(jobs, trials)  # each worker's memory within its share
    open_study(search)  # created (and checked) once, before any worker starts
    log(f"study {search.name} ({search.storage}): {trials} trial(s), outer fold {search.outer} "
        f"left out of every trial, scored on inner fold(s) "
        f"{', '.join(map(str, search.inner))}")
    if jobs == 1:
        run_trials(search, trials, log)
    else:
        context = multiprocessing.get_context("spawn")
        counts = [trials // jobs + (i < trials % jobs) for i in range(jobs)]
        workers = {i: context.Process(target=quiet_on_ctrl_c, args=(
            _worker, search, count, worker_name(i), shares))
            for i, count in enumerate(counts) if count}
        for process in workers.values():
            start_quietly(process)
        for process in workers.values():
            process.join()
        for i, process in workers.items():
            if process.exitcode:
                log(f"warning: worker {i} {ended(process.exitcode)}: "
                    f"{lost_trials(search, worker_name(i), counts[i], process.exitcode)}; the "
                    "study keeps the trials it finished")
    return summary(search)


def worker_name(number: int) -> str:
    """How worker ``number``'s lines start, and what its trials record as their worker."""
    return f"[worker {number}] "


def lost_trials(search: Search, worker: str, count: int, exit_code: int) -> str:
    """Record as failed the trial ``worker`` left running when it ended with ``exit_code``
    (killed mid-trial, it could not: the trial stayed "running" in the study for good), saying
    how the worker ended; what became of its ``count`` trials, in words."""
    optuna = optuna_module()
    with storage_errors(search.storage):
        storage = study_storage(search)
        study = storage.get_study_id_from_name(search.name)
        mine = [t for t in storage.get_all_trials(study, deepcopy=False)
                if t.user_attrs.get("worker") == worker]
        lost = [t.number for t in mine if t.state == optuna.trial.TrialState.RUNNING]
        for number in lost:
            trial = storage.get_trial_id_from_study_id_trial_number(study, number)
            storage.set_trial_user_attr(trial, "error", f"its worker process {ended(exit_code)}")
            storage.set_trial_state_values(trial, optuna.trial.TrialState.FAIL)
    said = [f"its trial {', '.join(map(str, lost))} recorded as failed"] if lost else []
    said += [f"{count - len(mine)} of its {count} trials not run"] if len(mine) < count else []
    return ", and ".join(said) or "all its trials ended"


def _worker(search: Search, trials: int, prefix: str, shares: int) -> None:
    """A worker process running ``trials`` trials, its memory planned within one of ``shares``
    shares (:func:`share_memory`)."""
    share_memory(shares)
    run_trials(search, trials, lambda line: print(line, flush=True), prefix)


def summary(search: Search) -> dict[str, Any]:
    """The study's best settings and inner score, its trial counts, and the config file of the
    best settings (``best.toml``, with the outer fold as ``val_fold``), written."""
    study = open_study(search)
    with storage_errors(search.storage):
        return _summary(search, study)


def _summary(search: Search, study: Any) -> dict[str, Any]:
    states = [t.state.name.lower() for t in study.trials]
    counts = {state: states.count(state) for state in sorted(set(states))}
    if not _completed(study):
        return {"study": search.name, "trials": counts, "best": None}
    best = study.best_trial
    config = search.base
    for key, value in best.params.items():
        config = with_setting(config, key, value)
    path = search.root / "best.toml"
    save_config(config, path)
    return {"study": search.name, "storage": search.storage, "trials": counts,
            "best": {"trial": best.number, "inner_accuracy": best.value, "settings": best.params,
                     "inner_folds": search.inner, "outer_fold": search.outer},
            "config": str(path), "final": study.user_attrs.get("final")}


def final_run(search: Search, log: Log) -> dict[str, Any]:
    """Train once with the chosen settings on every fold but the outer one and score the outer
    fold: the only time the search's outcome meets it. A second final run is refused."""
    result = summary(search)
    if result["best"] is None:
        raise Esc50Error(f"study {search.name} has no finished trial yet: run some first")
    study = open_study(search)
    if study.user_attrs.get("final"):
        done = study.user_attrs["final"]
        raise Esc50Error(f"the outer fold {search.outer} was already scored once, by "
                         f"{done['run']} ({done['accuracy']:.3f}); scoring it again after more "
                         "searching would let it choose: report that figure")
    config = load_config(result["config"]).override(output_dir=str(search.root),
                                                    run_name="final", progress=False)
    trainer = Trainer(config, load_registry(), log=log)
    run = trainer.fit()
    accuracy = trainer.state.history[-1]["val_accuracy"]
    study.set_user_attr("final", {"run": str(run), "accuracy": accuracy})
    log(f"outer fold {search.outer}: {accuracy:.3f} at the final epoch, scored once, with the "
        f"settings of trial {result['best']['trial']} (chosen on inner fold(s) "
        f"{', '.join(map(str, search.inner))}, inner accuracy "
        f"{result['best']['inner_accuracy']:.3f})")
    return {**result, "final": {"run": str(run), "accuracy": accuracy}}


def load_search(root: Path, name: str, storage: str | None) -> Search:
    """The search of an existing study (for ``--show`` and ``--final``), from what it recorded."""
    if storage is None and not (root / "study.db").is_file():
        raise Esc50Error(f"no study {name!r} in {root} (no study.db there): start it with "
                         f"esc50 tune --name {name} --space ...")
    storage = check_storage(storage or f"sqlite:///{root.resolve() / 'study.db'}")
    optuna = optuna_module()
    with storage_errors(storage):
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise Esc50Error(f"no study {name!r} in {storage}") from None
        attrs = study.user_attrs
    if not {"base", "outer", "inner"} <= set(attrs):
        raise Esc50Error(f"study {name!r} in {storage} records no esc50 settings: it was not "
                         "started by esc50 tune (use another --name)")
    base = TaskConfig().override(**attrs["base"])
    space = [Dimension(key) for key in study.best_params] if _completed(study) else []
    return Search(name, root, storage, base, attrs["outer"], attrs["inner"], space)

