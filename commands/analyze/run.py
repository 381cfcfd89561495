"""`esc50 analyze`: a folder tree of recordings labelled into a tree of results, resumable,
parallel and sharded across machines.

For each recording: its timeline (windows of the model's clip length every ``hop``, segments
of one top class: :mod:`esc50.commands.timeline`), its segments kept for the ``classes``
asked (all by default), written in each format asked (:mod:`formats`) under the results
folder, mirroring the tree, then marked done (:mod:`results`). At the end of every run the
combined table of segments, the failures and the summary are made again from every recording
done (:mod:`summary`), and, once every recording of the tree is done, the review page
(:mod:`review`).

- ``jobs`` worker processes on one machine are handed recordings one at a time, longest first,
  so a long recording starts early and never holds up the end of the others (each worker uses
  ``cores / jobs`` threads); as many start as fit in memory (:func:`planned_processes`).
- Several machines: each runs the same command with ``--shard i/n`` (or under torchrun, whose
  RANK and WORLD_SIZE say the same) into one results folder; the shards split the recordings
  by length (:mod:`recordings`) and together cover each exactly once.
- A recording that cannot be read gets one line in ``failed.csv`` and the summary, a folder that
  cannot be listed one line in the summary; the others go on; the call says how many failed,
  and how many of its share it left neither done nor failed (a worker killed while analysing
  one); the command then exits 1.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from esc50.commands.analyze.formats import (EMBEDDING_SUFFIXES, SUFFIXES, checked_formats,
                                            output_path, write_outputs)
from esc50.commands.analyze.recordings import (Recording, find_recordings, parse_shard,
                                                    shard_share)
from esc50.commands.analyze.results import ResultsTree
from esc50.commands.analyze.review import write_review
from esc50.commands.analyze.summary import detected_time, summarize, write_combined
from esc50.commands.api import Model, load
from esc50.commands.arguments import checked_arguments
from esc50.commands.workers import ended, received, start_worker
from esc50.commands.predict import default_hop
from esc50.commands.timeline import check_settings, csv_line, segment_json
from esc50.core.data.clips import not_audio_note
from esc50.core.data.stream import AudioInput
from esc50.core.errors import Esc50Error, did_you_mean, one_line
from esc50.core.files.digest import file_sha256
from esc50.core.files.write import StorageError, atomic_write, write_text
from esc50.core.results.plots import clock
from esc50.core.training.memory import plan_workers, resident_bytes
from esc50.core.training.scoring import Member, mean_probabilities

Log = Callable[[str], None]
PER_CLASS = 10  # detections per class on the review page
TOP_CLASSES = 3


@dataclass(frozen=True)
class Settings:
    """What an analysis does with each recording (recorded in its results tree)."""

    hop: float | None = None  # seconds between windows (None: half a window, as a number once
    # checked, so that a tree made with the default continues with that hop given, and back)
    min_prob: float = 0.0  # classes (and segments) kept reach this probability
    top_k: int = 3  # classes per window
    classes: tuple[str, ...] = ()  # the classes whose segments are kept (all when empty)
    formats: tuple[str, ...] = ("csv",)
    embeddings: bool = False  # each window's embedding, with the window table
    each_window: bool = False  # every window scored alone, never from a shared pass


@dataclass
class Progress:
    """What one run did: the recordings it analysed (their paths in the results), and what it
    said of those it left to another process (:func:`analyze_safely`'s "taken")."""

    done: set[str] = field(default_factory=set)
    taken: list[str] = field(default_factory=list)


def checked_settings(model: Model, settings: Settings) -> Settings:
    """``settings`` checked once, before any recording is read (a class name the model does
    not know is refused with the close ones), the hop in seconds (:func:`default_hop_seconds`
    when not given)."""
    check_settings(settings.min_prob, settings.top_k)
    hop = default_hop_seconds(model) if settings.hop is None else settings.hop
    model.hop_samples(hop)
    unknown = [c for c in settings.classes if c not in model.class_names]
    if unknown:
        hint = did_you_mean(unknown[0], model.class_names)
        raise Esc50Error(f"--classes: {unknown[0]!r} is not one of the model's "
                         f"{len(model.class_names)} classes" + (f" ({hint})" if hint else ""))
    return Settings(hop, settings.min_prob, settings.top_k,
                    tuple(dict.fromkeys(settings.classes)),
                    tuple(checked_formats(list(settings.formats))), settings.embeddings,
                    settings.each_window)


def default_hop_seconds(model: Model) -> float:
    """The hop a timeline takes when none is given (half a window), in seconds."""
    return default_hop(model.config.length_wav) / model.sample_rate


@checked_arguments
def analyze(model: str | Path, folder: str | Path, out: str | Path, *,
            formats: list[str] | None = None, classes: list[str] | None = None,
            min_prob: float = 0.0, hop: float | None = None, top_k: int = 3, jobs: int = 1,
            shard: str | None = None, segments: str | Path | None = None,
            per_class: int = PER_CLASS, embeddings: bool = False, each_window: bool = False,
            log: Log = print, progress: bool = True) -> dict[str, Any]:
    """Label every recording under ``folder`` with ``model`` (a run, a cross-validation folder
    or a trained model's name) into the results tree ``out``, as ``esc50 analyze`` does (see
    the module docstring): ``formats`` of the result files (csv, json, audacity, raven),
    ``classes`` whose segments are kept, ``min_prob``, ``hop`` and ``top_k`` as for a timeline,
    ``jobs`` worker processes (as many as fit in memory), ``shard`` ("i/n") this machine's
    share, ``segments`` the folder of the review page (``per_class`` detections a class),
    ``embeddings`` each window's, ``each_window`` every window scored alone (as ``predict
    --timeline`` does) rather than from a pass shared with its neighbours. Returns the summary
    of every recording done in ``out``."""
    settings = Settings(hop, min_prob, top_k, tuple(classes or ()), tuple(formats or ("csv",)),
                        embeddings, each_window)
    return run_analysis(model, Path(folder), Path(out), settings, jobs, shard,
                        Path(segments) if segments is not None else None, per_class, log,
                        progress)


def run_analysis(model_source: str | Path, folder: Path, out: Path, settings: Settings,
                 jobs: int, shard: str | None, segments: Path | None, per_class: int, log: Log,
                 progress: bool) -> dict[str, Any]:
    """:func:`analyze` with its settings gathered (``jobs`` and ``top_k`` are checked by
    :func:`checked_arguments`)."""
    if per_class < 1:
        raise Esc50Error(f"--per-class {per_class} must be at least 1")
    if segments is not None and segments.resolve() == folder.resolve():
        raise Esc50Error(f"--segments {segments} is the folder of recordings: the next run would "
                         "take its clips for recordings; name a folder of its own (one inside "
                         "it is left out of the recordings)")
    model = load(model_source, warn=log)
    settings = checked_settings(model, settings)
    index, count = parse_shard(shard)
    listing = find_recordings(folder, skip=[out] if segments is None else [out, segments])
    recordings = listing.recordings
    for error in listing.unlisted:
        log(f"error: {error}")
    if listing.not_audio:
        model.note(not_audio_note(folder, listing.not_audio, "analysed"))  # warn is log
    mine = shard_share(recordings, index, count)
    tree = ResultsTree(out, {**asdict(settings), "classes": list(settings.classes),
                             "formats": list(settings.formats), "model": model_digest(model)},
                       recorded_null={"hop": default_hop_seconds(model)})
    sharing = {recording: owner for recording, owner in tree.sharing_files(recordings).items()
               if recording in mine}  # of the whole tree: the two may fall to two shards
    for recording, owner in sharing.items():
        message = one_line(
            f"{recording.path}: its result files would be those of {owner.relative.as_posix()}: "
            f"the file system of {out} does not tell upper from lower case in names; rename "
            "one of them, or give --out a folder on a file system that does")
        tree.mark_failed(recording.relative, message)
        log(f"error: {message}")
    todo = [r for r in mine if r not in sharing and not tree.is_done(r)]
    changed = sum(tree.was_done(r.relative) for r in todo)
    log(f"{len(recordings)} recordings under {folder}"
        + (f"; shard {index}/{count} takes {len(mine)}" if count > 1 else "")
        + f"; {len(mine) - len(todo) - len(sharing)} already done"
        + (f", {changed} changed since their analysis" if changed else "")
        + f"; analysing {len(todo)} "
        f"({clock(sum(r.seconds for r in todo), hours=True)} of audio) with "
        f"{model.description}")
    if model.trained is not None:
        log(f"{model.trained.name}: licence of the weights: {model.trained.licence}")
    processes = planned_processes(model, min(jobs, len(todo)), log) if todo else 1
    started = time.perf_counter()
    counts = Progress()
    with tqdm(total=sum(r.seconds for r in todo), unit="s", disable=not progress,
              desc="audio analysed", bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio "
              "[{elapsed}<{remaining}]") as bar:
        run = run_here if processes == 1 else run_in_workers
        try:
            run(model, str(model_source), todo, tree, settings, processes, counts, bar.update,
                log)
        except StorageError as exc:
            raise StorageError(f"{exc}. Every recording done is kept: make room, then the same "
                               "command analyses the others") from None
    if counts.taken:
        log(f"note: {taken_note(counts.taken)}")
    wall = time.perf_counter() - started
    with tree.locked():  # shards ending together: one writes the combined files at a time
        records, failures = tree.records(), tree.failures()
        sources = {r.relative.as_posix(): r.path for r in recordings}
        this_run = sum(r["duration"] for r in records if r["file"] in counts.done)
        finished = {r["file"] for r in records} | {f["file"] for f in failures}
        not_done = [name for name in (r.relative.as_posix() for r in mine)
                    if name not in finished]
        summary = summarize(records, failures, set(sources), wall, this_run, listing.unlisted,
                            not_done, listing.not_audio)
        write_combined(tree, summary, records)
        missing = summary["recordings"] - summary["done"] - summary["failed"]
        if segments is not None and not missing:
            page = write_review(segments, records, sources,
                                model.config.length_wav / model.sample_rate, per_class, log)
            log(f"review page: {page}")
        elif segments is not None:
            log(f"the review page waits for every recording: {missing} not analysed yet "
                "(by other shards?); the same command writes it once they are")
    return summary


def planned_processes(model: Model, jobs: int, log: Log) -> int:
    """``jobs`` worker processes, or as many as fit in memory, said in a note
    (:func:`plan_workers`). The windows scored at a time are planned first
    (:meth:`Model.window_batch`: here, before any recording's embeddings are captured). A
    worker will hold what this process holds once it has scored that many windows (alone: more
    memory than a shared pass over as many), as it does here first. One process (``jobs`` 1)
    needs no more: the command scores as ``predict`` does."""
    batch = model.window_batch()
    if jobs == 1:
        return 1
    length = model.config.length_wav
    mean_probabilities(model.members, torch.zeros(batch, length), torch.full((batch,), length))
    processes, note = plan_workers(jobs, resident_bytes(),
                                   f"the model scoring {batch} windows at a time")
    if note:
        log(note)
    return processes


def model_digest(model: Model) -> list[str]:
    """The model by the sha256 of its checkpoint files: the same on every machine, wherever the
    files are."""
    return [file_sha256(run.path) for run in model.runs]


def run_here(model: Model, source: str, todo: list[Recording], tree: ResultsTree,
             settings: Settings, jobs: int, counts: Progress, advance: Callable[[float], None],
             log: Log) -> None:
    """Analyse ``todo`` in this process, one recording after another."""
    inputs = AudioInput(model.sample_rate)
    for recording in sorted(todo, key=lambda r: (-r.seconds, r.relative.as_posix())):
        tally(counts, recording, *analyze_safely(model, inputs, recording, tree, settings,
                                                 advance), log)


def tally(counts: Progress, recording: Recording, outcome: str, message: str, log: Log) -> None:
    """Count what became of ``recording`` (:func:`analyze_safely`'s ``outcome``) and say
    ``message``: an error when it failed (one line as it was made), else a note (none for a
    recording done whole), whose names are shown on one line here."""
    if outcome == "done":
        counts.done.add(recording.relative.as_posix())
    if outcome == "failed":
        log(f"error: {message}")
    elif outcome == "taken":
        counts.taken.append(message)
    elif message:
        log(f"note: {one_line(message)}")


def taken_note(taken: list[str], shown: int = 2) -> str:
    """One line on the recordings left to another process (``taken``: what was said of each),
    said once at the end: two commands on one tree at once leave each other most of it."""
    if len(taken) == 1:
        return one_line(taken[0])
    more = f"; and {len(taken) - shown} more" if len(taken) > shown else ""
    return one_line(f"{len(taken)} recordings left to another process analysing this tree into "
                    f"these results (the same command started twice?): "
                    f"{'; '.join(taken[:shown])}{more}")


def analyze_safely(model: Model, inputs: AudioInput, recording: Recording, tree: ResultsTree,
                   settings: Settings, advance: Callable[[float], None]) -> tuple[str, str]:
    """:func:`analyze_recording` while this process holds the recording's claim:
    ("done", "" or the notes on its damage); ("failed", its one-line error), recorded as
    a failure instead of raised, so one bad recording never costs the others; or ("taken", why)
    when another process (the same command started twice, say) is analysing it or has done it
    meanwhile. A :class:`StorageError` (a full disk) is raised: it is no recording's fault, and
    the recording stays not done."""
    with tree.claimed(recording.relative) as mine:
        if not mine or tree.is_done(recording):
            advance(recording.seconds)
            return "taken", f"{recording.relative.as_posix()}: " + (
                "another process is analysing it; left to it" if not mine else
                "another process analysed it meanwhile")
        try:
            return "done", analyze_recording(model, inputs, recording, tree, settings, advance)
        except StorageError:
            raise  # not the recording's fault: the results cannot be stored, the run stops
        except Esc50Error as exc:
            message = str(exc)
        except Exception as exc:  # a bug or a decoder's surprise: named, the others go on
            message = one_line(f"{recording.path}: {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())}")
        tree.mark_failed(recording.relative, message)
        return "failed", message


def analyze_recording(model: Model, inputs: AudioInput, recording: Recording,
                      tree: ResultsTree, settings: Settings,
                      advance: Callable[[float], None]) -> str:
    """One recording: its timeline, its result files, then its record (done). A recording that
    stops decoding part way is analysed up to there: returns the note saying so (else "")."""
    started = time.perf_counter()
    base = tree.result_base(recording.relative)
    tree.clear_leftovers(recording.relative, [*(output_path(base, f) for f in SUFFIXES),
                                              *embedding_paths(base)])
    covered = [0.0]
    damage: list[str] = []

    def on_window(window: Any) -> None:  # the progress bar follows the audio scored
        if window.end > covered[0]:
            advance(min(window.end, recording.seconds) - min(covered[0], recording.seconds))
            covered[0] = window.end

    with captured_embeddings(model.members) if settings.embeddings else nullcontext() as rows:
        timeline = model.timeline_of(replace(inputs, damage=damage.append),
                                     recording.path, settings.hop, settings.min_prob,
                                     settings.top_k, on_window,
                                     share_steps=not settings.each_window)
    advance(max(recording.seconds - covered[0], 0.0))
    kept = [s for s in timeline.segments
            if not settings.classes or s.label in settings.classes]
    name = recording.relative.as_posix()
    write_outputs(base, list(settings.formats), timeline, name, kept, model.sample_rate / 2)
    if rows is not None:
        write_embeddings(base, embedding_matrix(rows, len(timeline.windows), recording),
                         timeline)
    segments = [segment_json(s) for s in kept]
    tree.mark_done(recording.relative, {
        "file": name, "source": list(recording.stamp), "duration": timeline.duration,
        "windows": len(timeline.windows), "numerics": model.numerics,
        "seconds": time.perf_counter() - started, "segments": segments,
        "top": list(detected_time(segments).items())[:TOP_CLASSES],
        **({"damaged": "; ".join(damage)} if damage else {})})
    return "; ".join(damage)


@contextmanager
def captured_embeddings(members: list[Member]) -> Iterator[list[list[torch.Tensor]]]:
    """While open, every window's embedding of each member: the input of its model's last
    linear layer (the last hidden layer of a classifier), in the order windows are scored."""
    rows: list[list[torch.Tensor]] = [[] for _ in members]
    handles = []
    for k, member in enumerate(members):
        linears = [m for m in member.classifier.model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise Esc50Error(f"--embeddings: model {type(member.classifier.model).__name__} "
                             "has no linear layer whose input is an embedding")
        handles.append(linears[-1].register_forward_pre_hook(
            lambda module, args, k=k: rows[k].append(args[0].detach().float().cpu())))
    try:
        yield rows
    finally:
        for handle in handles:
            handle.remove()


def embedding_matrix(rows: list[list[torch.Tensor]], windows: int,
                     recording: Recording) -> np.ndarray:
    """[windows, dimensions]: each member's embedding of each window, side by side."""
    parts = [torch.cat(member).reshape(-1, torch.cat(member).shape[-1]) for member in rows]
    if any(part.shape[0] != windows for part in parts):
        raise Esc50Error(f"{recording.path}: --embeddings: the model's last linear layer was "
                         f"called for {parts[0].shape[0]} rows for {windows} windows (it does not "
                         "take one embedding per window)")
    return torch.cat(parts, dim=1).numpy()


def embedding_paths(base: Path) -> tuple[Path, Path]:
    """A recording's embeddings and its window table: ``<recording>.embeddings.npy`` and
    ``<recording>.windows.csv``."""
    embeddings, table = (base.with_name(base.name + suffix) for suffix in EMBEDDING_SUFFIXES)
    return embeddings, table


def write_embeddings(base: Path, matrix: np.ndarray, timeline: Any) -> None:
    """The embeddings [windows, dimensions] and the window table (each window's start, end and
    top class, in the same order): :func:`embedding_paths`."""
    embeddings, table = embedding_paths(base)
    npy = io.BytesIO()  # numpy writes a file itself, and a full disk's error loses its errno
    np.save(npy, matrix.astype(np.float32))
    atomic_write(embeddings, lambda handle: handle.write(npy.getbuffer()))
    rows = [csv_line(["start", "end", "class", "probability"])] + [
        csv_line([f"{w.start:.3f}", f"{w.end:.3f}", *(w.top[0] if w.top else ("", ""))])
        for w in timeline.windows]
    write_text(table, "".join(rows))


def run_in_workers(model: Model, source: str, todo: list[Recording], tree: ResultsTree,
                   settings: Settings, jobs: int, counts: Progress,
                   advance: Callable[[float], None], log: Log) -> None:
    """Analyse ``todo`` in ``jobs`` worker processes, longest first: this process hands each
    worker its next recording when it reports the last, through a pipe of its own
    (:func:`start_worker`: a worker killed at any moment breaks only its own pipe). Each worker
    uses its share of the cores. A worker that dies is reported with the recording it held,
    which stays not done; the others go on. A worker that cannot store its results stops them
    all, raising its :class:`StorageError` here."""
    context = multiprocessing.get_context("spawn")
    waiting = sorted(todo, key=lambda r: (-r.seconds, r.relative.as_posix()))
    workers = min(jobs, len(todo))
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes, pipes = zip(*(start_worker(context, worker, source, str(tree.root), tree.settings,
                                          settings, threads) for _ in range(workers)))
    held: dict[int, Recording] = {}
    running = set(range(workers))
    stopped = ""  # why the results could not be stored, when a worker could not store them

    def lose(number: int) -> None:
        """Worker ``number`` ended without a word (killed): say so, with what it held."""
        processes[number].join()
        lost = held.pop(number, None)
        running.discard(number)
        log(f"error: worker {number + 1} {ended(processes[number].exitcode)}" + (
            f" while analysing {lost.path} (it stays not done: run the same command again)"
            if lost else ""))

    def hand_out(number: int) -> None:
        """The next recording to worker ``number`` (None when there is none: it ends)."""
        recording = waiting.pop(0) if waiting else None
        try:
            pipes[number].send(recording)
        except OSError:  # it died meanwhile: the recording waits for another
            if recording is not None:
                waiting.insert(0, recording)
            return
        if recording is not None:
            held[number] = recording

    while running:
        for number, message in received({number: pipes[number] for number in running}):
            if message is None:  # its end closed: the worker is gone
                lose(number)
                continue
            kind, value = message
            if kind == "audio":
                advance(value)
            elif kind == "ready":
                hand_out(number)
            elif kind in ("done", "failed", "taken"):
                tally(counts, held.pop(number), kind, value, log)
                hand_out(number)
            elif kind == "exit":
                running.discard(number)
                if value:
                    log(f"error: worker {number + 1}: {value}")
            elif kind == "storage":  # the results cannot be stored: every worker stops
                stopped = value
                for process in processes:
                    process.terminate()
                running.clear()
                break
    for process in processes:
        process.join()
    if stopped:
        raise StorageError(stopped)


def worker(source: str, root: str, recorded: dict[str, Any], settings: Settings,
           threads: int, pipe: Any) -> None:
    """A worker process: the model loaded once, then each recording handed to it through
    ``pipe`` until None; what it does goes back through ``pipe`` as (kind, value)."""
    torch.set_num_threads(threads)
    problem = ""
    try:
        model = load(source, warn=lambda _: None)
        model.window_batch()  # planned before any recording's embeddings are captured
        tree = ResultsTree(Path(root), recorded)
        inputs = AudioInput(model.sample_rate)
        pipe.send(("ready", ""))
        while (recording := pipe.recv()) is not None:
            outcome, message = analyze_safely(model, inputs, recording, tree, settings,
                                              lambda seconds: pipe.send(("audio", seconds)))
            pipe.send((outcome, message))
    except StorageError as exc:
        pipe.send(("storage", str(exc)))
        return
    except Exception as exc:  # the model would not load here: every recording waits
        problem = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    pipe.send(("exit", problem))
