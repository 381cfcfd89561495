"""Reliability, round three: one test per mechanism of docs/reliability.md ("The mechanisms"),
each fixing a class of hostile inputs where it arises, and property-based tests of the parsers
(Hypothesis)."""

import os
import pickle
import re
import shutil
import string
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import esc50
from esc50.cli.main import cli
from esc50.commands.analyze.recordings import header_seconds
from esc50.commands.analyze.results import ResultsTree
from esc50.commands.evaluate import evaluate_runs
from esc50.core.config import TaskConfig, load_config
from esc50.core.data.audio import opened_audio, read_mono
from esc50.core.data.clips import find_clips
from esc50.core.data.split import grouped_random_split, make_split, dataset_digests
from esc50.core.data.wav import unfinished_wav
from esc50.core.errors import Esc50Error
from esc50.core.files.read import read_table
from esc50.core.files.tree import walk_tree
from esc50.core.files.write import fitting_name, write_text
from esc50.core.plugin_api.hookspecs import hookimpl
from esc50.core.plugin_api.components import parse_spec
from esc50.core.plugin_api.registry import load_registry
from esc50.core.results.checkpoint import load_checkpoint, save_checkpoint
from esc50.core.training.trainer import Trainer
from esc50.plugins.datasets.esc50 import CLIP_NAME
from tests.conftest import (SR, STFT_FLAGS, never_finished, small_config, tone, unlistable,
                            write_leftover, write_synthetic_dataset)

SMALL = ["--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
         "--batch-size", "8", "--no-progress"]
TRAIN_SMALL = [*SMALL, "--val-fold", "1"]  # the synthetic data has folds 1-3


# --- 1. memory: planned before the first step, never a kill --------------------------------

class Wide(nn.Module):
    """A model whose training step needs a lot of memory per clip: no batch normalization, so
    micro-batches give the same gradients as the whole batch."""

    name = "wide"

    def __init__(self, config, input_shape):
        super().__init__()
        self.up = nn.Linear(input_shape[1], 16384)  # about 24 MiB a clip for a step
        self.out = nn.Linear(16384, config.num_classes)

    def forward(self, features, frame_lengths):
        hidden = torch.relu(self.up(features.transpose(2, 3)))  # [B, 1, T, 16384]
        return self.out(hidden.mean(dim=(1, 2)))


def wide_registry():
    @hookimpl(specname="register_models")
    def hook(register):
        register(Wide)

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="m", register_models=hook), "big")
    return registry


def test_a_step_over_the_memory_budget_is_planned_as_micro_batches(synthetic_data, tmp_path,
                                                                   monkeypatch):
    """Under a budget a step of 16 clips would exceed, the run takes micro-batches with their
    gradients accumulated, says so, and ends with the weights one big batch gives (up to float
    rounding)."""
    def run(name, **changes):
        config = small_config(synthetic_data, model="big.wide", output_dir=str(tmp_path),
                              run_name=name, num_epochs=2, batch_size=16, **changes)
        lines = []
        trainer = Trainer(config, wide_registry(), log=lines.append)
        trainer.fit()
        return trainer, lines

    whole, _ = run("whole")
    assert whole.config.accumulate == 1
    from esc50.core.training import loop
    from esc50.core.training.memory import resident_bytes

    model = whole.state.model
    step = loop.measure_step(whole.data, model, loop.training_loss(model, 0.0), 16, False, 0)

    def half_a_step() -> str:
        """Room for about half the batch above what the process holds now (a run can leave it
        holding more: freed memory is kept for reuse)."""
        return str(resident_bytes() + step // 2)
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", half_a_step())
    planned, lines = run("planned")
    note = next(line for line in lines if line.startswith("memory: "))
    assert f"{planned.config.accumulate} micro-batches" in note and planned.config.accumulate > 1
    assert "ESC50_MEMORY_LIMIT" in note
    assert load_config(tmp_path / "planned" / "config.toml").accumulate == \
        planned.config.accumulate  # recorded, so a resumed run takes the same steps
    for key, value in whole.state.model.state_dict().items():
        torch.testing.assert_close(planned.state.model.state_dict()[key], value, rtol=1e-4,
                                   atol=1e-5)
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", str(resident_bytes() + 16 * 2**20))  # < one clip's step
    with pytest.raises(Esc50Error, match="needs about .* GiB on cpu even for one clip .* GiB is "
                                         "available \\(ESC50_MEMORY_LIMIT=.*, of which this "
                                         "process already holds .* GiB\\): .* the smallest "
                                         "ESC50_MEMORY_LIMIT that fits is about .*G$"):
        run("refused")
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", half_a_step())
    with pytest.raises(Esc50Error, match="needs about .* use accumulate="):
        run("fixed", accumulate=1)


def test_windows_are_scored_as_many_at_a_time_as_fit_in_memory(synthetic_data, tmp_path,
                                                               monkeypatch):
    """A recording of many windows under a budget 16 windows at a time would exceed: the model
    scores as many at a time as fit, says so, and labels the recording as it does at 16."""
    from esc50.core.training.memory import MARGIN, measure, resident_bytes
    from esc50.core.training.scoring import mean_probabilities

    config = small_config(synthetic_data, model="big.wide", output_dir=str(tmp_path),
                          run_name="wide", num_epochs=1)
    Trainer(config, wide_registry(), log=lambda _: None).fit()
    recording = np.concatenate([tone(440.0 * (1 + k % 3), 1.0, SR, seed=k) for k in range(12)])

    def loaded(lines: list[str]) -> esc50.Model:
        return esc50.load(tmp_path / "wide", registry=wide_registry(), warn=lines.append)

    def top(model: esc50.Model) -> np.ndarray:
        return np.array([[p for _, p in w.top] for w in
                         model.timeline(recording, SR, hop=0.5).windows])

    unplanned: list[str] = []
    model = loaded(unplanned)
    expected = top(model)
    assert model.window_batch() == 16 and not unplanned
    lines: list[str] = []
    model = loaded(lines)
    window = measure(lambda: mean_probabilities(model.members, torch.zeros(1, SR),
                                                torch.full((1,), SR)), torch.device("cpu"))
    # room for about 4.5 windows above what the process holds, the model loaded and run once
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", str(int(resident_bytes() + 4.5 * window / MARGIN)))
    found, size = top(model), model.window_batch()
    assert 2 <= size <= 5 and len(expected) > size
    [note] = lines
    assert note.startswith(f"memory: scoring a window allocates about {window / 2**20:.0f} MiB "
                           "and ") and note.endswith(f": scoring {size} windows at a time, not 16")
    assert f"GiB is available (ESC50_MEMORY_LIMIT={os.environ['ESC50_MEMORY_LIMIT']}, " in note
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5)


def test_clips_are_evaluated_as_many_at_a_time_as_fit_beside_their_audio(synthetic_data,
                                                                          tmp_path, monkeypatch):
    """Evaluating under a budget the run's own scoring batch would exceed: the model scores as
    many clips at a time as fit beside their decoded audio, says so, and gives the run's
    figures (it scored the run's batch whatever the memory); where not even one clip fits
    beside the audio, one line before anything is decoded."""
    from esc50.core.training.memory import MARGIN, measure, resident_bytes
    from esc50.core.training.scoring import probabilities

    config = small_config(synthetic_data, model="big.wide", output_dir=str(tmp_path),
                          run_name="wide", num_epochs=1, batch_size=4)
    Trainer(config, wide_registry(), log=lambda _: None).fit()

    model = esc50.load(tmp_path / "wide", registry=wide_registry())

    def evaluated(lines: list[str]) -> dict:  # the loaded model, evaluated again each time
        return evaluate_runs(model.runs, model.registry, warn=lines.append)

    unplanned: list[str] = []
    expected = evaluated(unplanned)
    assert not unplanned
    member, length, clips = model.runs[0].member, config.length_wav, expected["clips"]
    assert member.scoring.batch == 4 and clips > 4
    clip = measure(lambda: probabilities(member.classifier, torch.zeros(
        1, length, dtype=torch.int16), torch.tensor([length]), member.scoring),
        torch.device("cpu"))
    audio = clips * length * 2
    # room for the audio and about 3.5 clips' scoring above what the process holds
    monkeypatch.setenv("ESC50_MEMORY_LIMIT",
                       str(int(resident_bytes() + (audio + 3.5 * clip) / MARGIN)))
    lines: list[str] = []
    found = evaluated(lines)
    [note] = lines
    size = int(re.search(r": scoring (\d+) clips? at a time, not 4 ", note)[1])
    assert 1 <= size <= 3, note
    assert note.startswith(f"memory: scoring a clip allocates about {clip / 2**20:.0f} MiB and ")
    assert f" besides the {clips} decoded clips ({audio / 2**30:.2f} GiB): " in note
    assert note.endswith("(the run scored 4 at a time: its probabilities can differ from these "
                         "in float rounding)")

    def true_class_probabilities(report: dict) -> list[float]:  # every clip's (8 <= 10 listed)
        return [w["p_true"] for w in sorted(report["worst"], key=lambda w: w["row"])]

    assert len(expected["worst"]) == clips
    np.testing.assert_allclose(true_class_probabilities(found),
                               true_class_probabilities(expected), rtol=1e-4, atol=1e-6)
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", str(int(resident_bytes() + (audio + 0.5 * clip)
                                                     / MARGIN)))
    with pytest.raises(Esc50Error, match=f"^the {clips} decoded clips need about .* GiB and "
                                         "scoring one clip about .* MiB, but .* GiB is available "
                                         r"\(ESC50_MEMORY_LIMIT=.*; the smallest "
                                         "ESC50_MEMORY_LIMIT that fits is about .*G$"):
        evaluated([])


def test_decoding_that_cannot_fit_is_refused_before_it_starts(synthetic_data, monkeypatch):
    from esc50.core.training.memory import resident_bytes

    # Room for what the process touches before the check (library pages faulted in on first
    # use), far below the GiBs the clips need.
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", str(resident_bytes() + 2**28))
    with pytest.raises(Esc50Error, match="clips of length_wav=100000000 samples need about .* "
                                         "GiB .* is available .* the smallest "
                                         "ESC50_MEMORY_LIMIT that fits is about"):
        Trainer(small_config(synthetic_data, length_wav=100_000_000), load_registry(),
                log=lambda _: None)
    for limit in ("0", "1M"):  # less than the process itself holds
        monkeypatch.setenv("ESC50_MEMORY_LIMIT", limit)
        with pytest.raises(Esc50Error, match=f"^ESC50_MEMORY_LIMIT={limit} is below what this "
                                             "process already holds .* the limit covers the "
                                             "whole process"):
            Trainer(small_config(synthetic_data), load_registry(), log=lambda _: None)


def test_processes_side_by_side_each_plan_within_their_share(monkeypatch):
    """``ESC50_MEMORY_SHARES=4``: a quarter of the room each, said in the source; the smallest
    limit named in a refusal gives each share what it needs."""
    from esc50.core.training import memory

    mib = 2**20
    monkeypatch.setattr(memory, "resident_bytes", lambda: 100 * mib)
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", str(500 * mib))
    alone = memory.memory_budget(torch.device("cpu"))
    monkeypatch.setenv("ESC50_MEMORY_SHARES", "4")
    available, source = memory.memory_budget(torch.device("cpu"))
    assert alone[0] == 400 * mib and available == 100 * mib
    assert source == alone[1] + ", split 4 ways (ESC50_MEMORY_SHARES)"
    need = 0.85 * 200 * mib  # what a share of 200 MiB holds: a limit of 100 + 4 x 200 MiB
    assert memory.smallest_limit(source, need, available).endswith(f"about {900 / 1024:.1f}G")
    for text in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("ESC50_MEMORY_SHARES", text)
        with pytest.raises(Esc50Error, match=f"^ESC50_MEMORY_SHARES='{re.escape(text)}': "
                                             "expected a whole number of at least 1$"):
            memory.memory_budget(torch.device("cpu"))


# --- 2. small data is data ----------------------------------------------------------------

def test_an_error_is_one_line_whatever_the_names_in_it_hold():
    """Line breaks, tabs and terminal escapes in a name are written as escapes; a name that is
    not UTF-8 (surrogates) and other letters stay; so does the error sent between processes."""
    name = "rec\r\nsecond line\t\x1b[2J\u2028" + os.fsdecode(b"caf\xe9") + "é.wav"
    error = Esc50Error(f"{name}: the audio is all silence")
    assert str(error) == ("rec\\r\\nsecond line\\t\\x1b[2J\\u2028" + os.fsdecode(b"caf\xe9")
                          + "é.wav: the audio is all silence")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_a_name_of_255_bytes_is_written_atomically_and_its_leftovers_alone_removed(tmp_path):
    """A temporary file's name adds to its file's: a long name is cut, with a digest that keeps
    apart two names differing only past the cut."""
    tree = ResultsTree(tmp_path, {"each_window": False})  # what removes one file's leftovers
    name, twin = tmp_path / ("b" * 251 + ".txt"), tmp_path / ("b" * 251 + ".csv")
    write_text(name, "whole\n")
    assert name.read_text() == "whole\n"
    left, other = write_leftover(name), write_leftover(twin)
    assert len(left.name.encode()) <= 255 and left.name != other.name
    tree.clear_leftovers(Path("rec.wav"), [name])
    assert not left.exists() and other.exists() and name.exists()
    too_long = tmp_path / ("b" * 256)  # no file system holds it: one line, not a traceback
    with pytest.raises(Esc50Error, match=f"^cannot write {too_long}: File name too long; "
                                         "nothing was written$"):
        write_text(too_long, "whole\n")


@pytest.mark.parametrize("command, option", [
    (["analyze", "esc50-rescnn", ".", "--out", "results"], "--top-k"),
    (["analyze", "esc50-rescnn", ".", "--out", "results"], "--jobs"),
    (["analyze", "esc50-rescnn", ".", "--out", "results"], "--per-class"),
    (["predict", "esc50-rescnn", "-"], "--top-k"),
    (["cv", "--name", "x"], "--jobs"),
    (["tune", "--name", "x"], "--jobs"),
    (["tune", "--name", "x"], "--trials"),
    (["tune", "--name", "x"], "--inner-folds")])
def test_a_count_below_one_is_refused_naming_its_option(command, option, tmp_path, monkeypatch):
    """Before anything runs, and by the option's name (the Python API's argument names, such
    as ``cv(jobs=0)``, mean nothing on the command line)."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [*command, option, "0"])
    assert result.exit_code == 2 and list(tmp_path.iterdir()) == []
    assert result.output.splitlines()[-1] == (f"Error: Invalid value for '{option}': 0 is not "
                                              "in the range x>=1.")


def test_a_path_the_system_refuses_unforeseen_is_one_line_naming_it(tmp_path):
    """No check of esc50's foresaw a name over 255 bytes as a model: the system's refusal is
    one line naming the path, not a traceback (``--traceback`` still shows it)."""
    too_long = "q" * 300
    result = CliRunner().invoke(cli, ["evaluate", too_long])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: {too_long}: File name too long"]


def test_small_classes_still_give_a_validation_share_and_one_class_is_refused(tmp_path):
    groups = [f"g{i}" for i in range(8)]
    train, val, note = grouped_random_split(groups, [0] * 4 + [1] * 4, 0.9, seed=0)
    assert len(val) == 1 and len(train) == 7 and "moved to validation" in note
    labels = [c for c in range(50) for _ in range(4)]  # 200 clips, 4 per class
    train, val, _ = grouped_random_split([f"r{i}" for i in range(200)], labels, 0.9, seed=0)
    assert 15 <= len(val) <= 25 and not set(train) & set(val)
    data = tmp_path / "one"
    (data / "dog").mkdir(parents=True)
    for k in range(4):
        sf.write(data / "dog" / f"{k}.wav", tone(300.0, seed=k), SR)
    with pytest.raises(Esc50Error, match="has clips of one class only \\('dog'\\): a classifier "
                                         "needs two classes at least"):
        find_clips(data, TaskConfig(dataset="plugins.folder"))


def test_no_class_with_two_recordings_is_the_one_refusal(tmp_path):
    data = tmp_path / "few"
    for name, freq in (("a", 300.0), ("b", 700.0)):
        (data / name).mkdir(parents=True)
        sf.write(data / name / "x.wav", tone(freq), SR)
    config = small_config(data, dataset="plugins.folder:min_clips_per_class=1", num_classes=2)
    table = find_clips(data, config)
    with pytest.raises(Esc50Error, match="no class of the 2 clips .* has two recordings"):
        make_split(table, config, dataset_digests(table))


# --- 3. every path a user gives: one checked reader ---------------------------------------

def test_fifos_and_devices_are_refused_not_waited_on(synthetic_data, tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(Esc50Error, match="pipe.wav is a FIFO \\(named pipe\\), not a regular "
                                         "file"):
        esc50.core.data.audio.load_clip(fifo, SR)
    os.mkfifo(synthetic_data / "1-999-A-0.wav")
    table = find_clips(synthetic_data, small_config(synthetic_data, skip_bad_files=True),
                       warn=lambda _: None)
    assert all(c.path.name != "1-999-A-0.wav" for c in table.clips)
    with pytest.raises(Esc50Error, match="config file .* is a character device"):
        load_config("/dev/null.toml" if os.path.exists("/dev/null.toml") else
                    _device_config(tmp_path))


def _device_config(tmp_path):
    link = tmp_path / "null.toml"
    link.symlink_to("/dev/null")
    return link


def test_a_csv_manifest_reads_relative_absolute_outside_and_linked_rows(tmp_path, monkeypatch):
    data = tmp_path / "set"
    (data / "clips").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    rows = ["path,label"]
    for i, freq in enumerate((300.0, 700.0)):
        for k in range(3):
            sf.write(data / "clips" / f"c{i}{k}.wav", tone(freq, seed=k), SR)
            rows.append(f"clips/c{i}{k}.wav,class{i}")
    sf.write(outside / "far.wav", tone(300.0, seed=7), SR)
    rows += [f"{outside / 'far.wav'},class0", "../elsewhere/far2.wav,class1"]
    sf.write(outside / "far2.wav", tone(700.0, seed=8), SR)
    (data / "linked").symlink_to(data / "clips")
    rows.append("linked/c00.wav,class0")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)  # the documented form: a relative --data
    config = TaskConfig().override(dataset="plugins.csv:sample_rate=8000,clip_seconds=1.0",
                                   data="set")
    table = find_clips(__import__("pathlib").Path("set"), config)
    names = table.names()
    assert len(names) == 9 and str(outside / "far.wav") in names and "linked/c00.wav" in names


@pytest.mark.parametrize("body, message", [
    (b"path,label\nclips/a.wav,x,extra\n", "row 2 has 3 fields where the header names 2"),
    (b"path,label\nclips/a.wav\x00,x\n", "line 2 holds a NUL byte"),
    (bytes(range(256)) * 40, "line 1 holds a NUL byte: not a text file"),
    (bytes(range(1, 256)) * 40, "the header lacks label, path"),
    (b"path,path\na,b\n", "must name each column once"),
])
def test_a_broken_manifest_is_one_line_naming_file_and_row(tmp_path, body, message):
    (tmp_path / "labels.csv").write_bytes(body)
    with pytest.raises(Esc50Error, match=message):
        find_clips(tmp_path, TaskConfig(dataset="plugins.csv"))


def test_a_missing_listed_file_names_the_plugin_and_obeys_skip_bad_files(tmp_path):
    data = tmp_path / "set"
    data.mkdir()
    rows = ["path,label"]
    for i, freq in enumerate((300.0, 700.0)):
        for k in range(3):
            sf.write(data / f"c{i}{k}.wav", tone(freq, seed=k), SR)
            rows.append(f"c{i}{k}.wav,class{i}")
    rows.append("gone.wav,class0")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    config = TaskConfig(dataset="plugins.csv")
    with pytest.raises(Esc50Error, match="dataset plugins.csv \\(esc50 .*\\) lists .*gone.wav, "
                                         "which does not exist; --skip-bad-files"):
        find_clips(data, config)
    warned = []
    table = find_clips(data, config.override(skip_bad_files=True), warn=warned.append)
    assert len(table.clips) == 6 and "left out 1 clip(s)" in warned[0]


def test_a_huge_field_is_read(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n" + "x" * 300_000 + ",1\n")
    assert len(read_table(tmp_path / "t.csv")[0]["a"]) == 300_000


# --- 4. every path esc50 writes: one checked writer -----------------------------------------

def test_output_names_stay_inside_and_unwritable_places_are_one_line(synthetic_data, tmp_path):
    for name in ("../x", str(tmp_path / "abs"), "a/b"):
        result = CliRunner().invoke(cli, ["cv", "--data", str(synthetic_data), "--name", name,
                                          "--output-dir", str(tmp_path / "runs"), *SMALL])
        assert result.exit_code == 1 and "must be a plain name" in result.output, result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "abs").exists()
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    run = CliRunner().invoke(cli, ["new-plugin", "mine", "--dir", str(blocker / "sub")])
    assert run.exit_code == 1 and f"cannot create --dir {blocker / 'sub'}: Not a directory" in \
        run.output, run.output
    (tmp_path / "esc50-other").write_text("in the way")
    again = CliRunner().invoke(cli, ["new-plugin", "other", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "esc50-other already exists" in again.output
    long = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--run-name",
                                    "n" * 300, "--output-dir", str(tmp_path), *TRAIN_SMALL])
    assert long.exit_code == 1 and "a file name holds at most 255" in long.output


def test_a_report_of_two_runs_named_alike_keeps_both(synthetic_data, tmp_path):
    for folder in ("a", "b"):
        result = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--epochs",
                                          "1", "--output-dir", str(tmp_path / folder),
                                          "--run-name", "same", *TRAIN_SMALL])
        assert result.exit_code == 0, result.output
    out = tmp_path / "report"
    report = CliRunner().invoke(cli, ["report", str(tmp_path / "a" / "same"),
                                      str(tmp_path / "b" / "same"), "--out", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "same-curves.png").is_file() and (out / "same-2-curves.png").is_file()


# --- 5. config files and checkpoints ------------------------------------------------------

@pytest.mark.parametrize("name, text, message", [
    ("a.yaml", "x: !!python/object/apply:os.system ['echo']\n", "could not determine a "
     "constructor"),
    ("b.yaml", "1: 2\n", "key 1 \\(int\\) is not a name"),
    ("c.toml", "a = [\n", "line|Invalid"),
    ("d.yaml", "[" * 4000 + "]" * 4000, "nested too deeply"),
    ("e.toml", "[a.b.c.d.e]\nx = 1\n", "nested more than three deep"),
    ("f.toml", "batch_size = 8\x00\n", "NUL byte"),
])
def test_config_files_that_cannot_be_configs_are_one_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(Esc50Error, match=f"config file .*{name}.*({message})"):
        load_config(tmp_path / name)


def test_checkpoints_that_do_not_fit_are_one_line(synthetic_data, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--epochs", "1",
                                      "--output-dir", str(tmp_path), "--run-name", "r", *TRAIN_SMALL])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "r" / "last.pt")
    short = tmp_path / "short" / "last.pt"
    short.parent.mkdir()
    save_checkpoint({**state, "class_names": state["class_names"][:2]}, short)
    out = CliRunner().invoke(cli, ["evaluate", str(short)])
    assert out.exit_code == 1 and "lists 2 class names for num_classes=4" in out.output
    other = tmp_path / "other" / "last.pt"
    other.parent.mkdir()
    save_checkpoint({**state, "config": {**state["config"], "model": "plugins.lstm"}}, other)
    out = CliRunner().invoke(cli, ["evaluate", str(other)])
    assert out.exit_code == 1 and "its weights do not fit the model its config builds" in \
        out.output
    text = tmp_path / "weights.pt"
    text.write_text("these are not weights")
    out = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--weights",
                                   str(text), "--output-dir", str(tmp_path), *TRAIN_SMALL])
    assert out.exit_code == 1 and "is not a readable checkpoint" in out.output
    unused = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--model",
                                      "plugins.kumar", "--set", "plugins.crnn.hidden_size=7",
                                      *TRAIN_SMALL])
    assert unused.exit_code == 1 and "option plugins.crnn.hidden_size is for plugins.crnn, " \
        "which this run does not use" in unused.output


# --- 6. the same clip twice is a leak -----------------------------------------------------

def test_identical_audio_under_two_labels_is_refused_and_under_one_kept_together(tmp_path):
    data = tmp_path / "set"
    for name, freq in (("dog", 300.0), ("cat", 700.0)):
        (data / name).mkdir(parents=True)
        for k in range(4):
            sf.write(data / name / f"{k}.wav", tone(freq, seed=k), SR)
    (data / "puppy").symlink_to(data / "dog")  # a class folder that is another class
    config = small_config(data, dataset="plugins.folder", num_classes=None)
    table = find_clips(data, config)
    with pytest.raises(Esc50Error, match="hold the same audio .* under two labels"):
        dataset_digests(table)
    (data / "puppy").unlink()
    (data / "dog" / "copy.wav").write_bytes((data / "dog" / "0.wav").read_bytes())
    table = find_clips(data, config)
    digests = dataset_digests(table)
    split = make_split(table, config.override(train_ratio=0.5), digests)
    sides = [{digests[n] for n in side} for side in (split.train, split.val)]
    assert not sides[0] & sides[1]


def test_a_meta_csv_giving_one_name_to_every_target_is_refused(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", with_csv=True, folds=(1, 2))
    meta = data / "meta" / "esc50.csv"
    lines = meta.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("category")
    rows = [",".join("same" if i == column else cell for i, cell in enumerate(line.split(",")))
            for line in lines[1:]]
    meta.write_text("\n".join([lines[0], *rows]) + "\n")
    with pytest.raises(Esc50Error, match="'same'.* to more than one label"):
        find_clips(data, small_config(data))


# --- 7. loggers cannot change results -----------------------------------------------------

def test_a_logger_that_edits_rows_or_exits_changes_nothing(synthetic_data, tmp_path):
    class Meddler(esc50.Logger):
        name = "meddler"

        def __init__(self, config):
            pass

        def epoch(self, row):
            row["val_accuracy"] = 99.0

        def end(self, metrics):
            sys.exit(3)

    @hookimpl(specname="register_loggers")
    def hook(register):
        register(Meddler)

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="l", register_loggers=hook), "bad")
    lines = []
    config = small_config(synthetic_data, loggers=["bad.meddler"], output_dir=str(tmp_path),
                          run_name="r", num_epochs=2)
    Trainer(config, registry, log=lines.append).fit()
    history = (tmp_path / "r" / "history.csv").read_text()
    assert "99.0" not in history
    assert all(row["val_accuracy"] <= 1 for row in load_checkpoint(tmp_path / "r" / "last.pt")
               ["history"])
    assert any("logger bad.meddler failed on end (SystemExit: 3)" in line for line in lines)


# --- 9. the Python API checks its arguments ------------------------------------------------

def test_the_python_api_checks_its_arguments(synthetic_data, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--epochs", "1",
                                      "--output-dir", str(tmp_path), "--run-name", "r", *TRAIN_SMALL])
    assert result.exit_code == 0
    model = esc50.load(tmp_path / "r")
    with pytest.raises(Esc50Error, match="predict\\(sample_rate=0\\): expected a whole number "
                                         "of at least 1"):
        model.predict(np.zeros(8000, np.float32), sample_rate=0)
    with pytest.raises(Esc50Error, match="predict_files\\(paths='folder'\\): expected a list"):
        list(model.predict_files("folder"))
    with pytest.raises(Esc50Error, match="train\\(epochs=2.5\\): expected an int"):
        esc50.train(epochs=2.5)


# --- property-based tests of the parsers ---------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_any_bytes_as_a_csv_are_rows_or_one_line(tmp_path, body):
    path = tmp_path / "t.csv"
    path.write_bytes(body)
    try:
        rows = read_table(path)
    except Esc50Error as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for r in rows for k, v in r.items())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXT, st.sampled_from([".toml", ".yaml"]))
def test_any_text_as_a_config_is_a_config_or_one_line(tmp_path, text, suffix):
    path = tmp_path / f"c{suffix}"
    path.write_text(text, errors="surrogatepass")
    try:
        config = load_config(path)
    except Esc50Error as exc:
        assert "\n" not in str(exc).strip() and "config file" in str(exc)
    else:
        assert isinstance(config, TaskConfig)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_any_plugin_spec_parses_or_is_one_line(spec):
    try:
        plugin_id, options = parse_spec(spec)
    except Esc50Error as exc:
        assert "\n" not in str(exc)
    else:
        assert plugin_id and ":" not in plugin_id
        assert all(k and "," not in k for k in options)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable, max_size=40))
def test_any_file_name_is_an_esc50_clip_name_or_not(stem):
    match = CLIP_NAME.match(stem)
    if match:
        assert int(match["fold"]) >= 0 and int(match["target"]) >= 0
        assert f"{match['fold']}-{match['clip']}-{match['take']}-{match['target']}" == stem


NAMES = st.one_of(st.text(min_size=1, max_size=300),
                  st.binary(min_size=1, max_size=300).map(os.fsdecode))  # any bytes, as read


@settings(max_examples=300, deadline=None)
@given(NAMES, NAMES, st.integers(min_value=0, max_value=20))
def test_any_name_fits_with_room_for_its_suffix_and_stays_apart(name, other, room):
    """A name that fits is itself; any other is cut between characters to leave ``room``
    bytes, and two names never become one."""
    fitted = fitting_name(name, room)
    assert len(os.fsencode(fitted)) <= 255 - room and fitting_name(name, room) == fitted
    if len(os.fsencode(name)) <= 255 - room:
        assert fitted == name
    else:
        assert name.startswith(fitted[:-17]) and fitted[-17] == "~"
    assert (fitting_name(other, room) == fitted) == (other == name)


def test_a_folder_tree_is_walked_through_links_once_naming_what_cannot_be_listed(tmp_path,
                                                                                monkeypatch):
    """The one walk of a user's folders (analyze, predict, datasets, noise): links to folders
    are followed, what links reach twice (a loop, a second name) is listed once, hidden names
    and skipped folders are left out, and a folder that cannot be listed is named."""
    root, other = tmp_path / "tree", tmp_path / "other"
    for path in (root / "a" / "1.wav", root / "b" / "2.wav", other / "3.wav",
                 root / ".git" / "x.wav", root / "skip" / "4.wav"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    (root / "a" / "._1.wav").write_bytes(b"")
    (root / "a" / "up").symlink_to(root)  # a loop
    (root / "c").symlink_to(other)
    (root / "d").symlink_to(other)  # a second name for c
    (root / "b" / "two.wav").symlink_to(root / "b" / "2.wav")
    (root / "gone.wav").symlink_to(root / "nowhere.wav")
    tree = walk_tree(root, skip=[root / "skip"])
    assert [p.relative_to(root).as_posix() for p in tree.entries] == [
        "a/1.wav", "b/2.wav", "c/3.wav", "gone.wav"]
    assert tree.hidden == 1 and tree.unlisted == {}
    unlistable({root / "b"}, monkeypatch)
    tree = walk_tree(root, skip=[root / "skip"])
    assert [p.relative_to(root).as_posix() for p in tree.entries] == ["a/1.wav", "c/3.wav",
                                                                     "gone.wav"]
    assert tree.refusals() == [f"{root / 'b'}: cannot list the folder (Permission denied)"]
    unlistable({root}, monkeypatch)
    with pytest.raises(Esc50Error) as error:
        walk_tree(root)
    assert str(error.value) == f"{root}: cannot list the folder (Permission denied)"


@pytest.mark.parametrize("subtype, container", [("PCM_16", "WAV"), ("PCM_U8", "WAV"),
                                                ("PCM_24", "WAV"), ("FLOAT", "WAV"),
                                                ("PCM_16", "WAVEX")])
def test_a_wav_whose_header_was_never_finished_is_read_to_its_end(tmp_path, subtype, container):
    """libsndfile reads no frame of a WAV whose data size is 0; esc50 reads the samples that
    follow it, as ffmpeg and sox do, and leaves a finished WAV as it is."""
    samples = np.stack([tone(440.0, 1.5, SR), tone(660.0, 1.5, SR)], axis=1) * 0.5
    whole = tmp_path / "whole.wav"
    sf.write(whole, samples, SR, subtype=subtype, format=container)
    with sf.SoundFile(never_finished(whole, tmp_path / "cut.wav")) as raw:
        assert raw.frames == 0  # what libsndfile alone makes of it
    expected = torch.cat(list(read_mono(whole, SR)))
    read = torch.cat(list(read_mono(tmp_path / "cut.wav", SR)))
    assert read.shape == (len(samples),) and torch.equal(read, expected)
    assert header_seconds(tmp_path / "cut.wav") == len(samples) / SR  # analyze's listing
    with (tmp_path / "cut.wav").open("ab") as handle:
        handle.write(b"\x01")  # a frame cut short at the end is not read
    assert torch.equal(torch.cat(list(read_mono(tmp_path / "cut.wav", SR))), expected)


def test_a_wav_whose_header_stopped_being_updated_is_read_to_its_end(tmp_path):
    """A recorder that updates the header now and then and loses power leaves a data size
    short of the samples: libsndfile reads only that many, and the rest was lost without a
    word. esc50 reads them all (what follows the data is not chunks: samples)."""
    samples = np.stack([tone(440.0, 2.0, SR), tone(660.0, 2.0, SR)], axis=1) * 0.5
    whole = tmp_path / "whole.wav"
    sf.write(whole, samples, SR, subtype="PCM_24")
    data = bytearray(whole.read_bytes())
    size_at = data.index(b"data") + 4
    data[size_at:size_at + 4] = (6 * SR // 2).to_bytes(4, "little")  # half a second's frames
    (tmp_path / "stale.wav").write_bytes(bytes(data))
    with sf.SoundFile(tmp_path / "stale.wav") as alone:
        assert alone.frames == SR // 2  # what libsndfile alone makes of it
    read = torch.cat(list(read_mono(tmp_path / "stale.wav", SR)))
    assert torch.equal(read, torch.cat(list(read_mono(whole, SR))))
    assert header_seconds(tmp_path / "stale.wav") == len(samples) / SR  # analyze's listing


def test_a_wav_past_4_gib_whose_size_wrapped_is_read_to_its_end(tmp_path):
    """A WAV holding more than 4 GiB of samples has a data size of that modulo 2**32 (32 bits
    hold no more): libsndfile read the remainder alone, hours short. A sparse file of 4 GiB and
    a second (on the disk only its header, its first two seconds and its last)."""
    first = (tone(660.0, 2.0, SR) * 0.5 * 32767).astype("<i2").tobytes()
    last = (tone(440.0, 1.0, SR) * 0.5 * 32767).astype("<i2").tobytes()
    length = 2**32 + len(last)  # bytes of samples
    header = (b"RIFF" + (36 + length).to_bytes(8, "little")[:4] + b"WAVEfmt "
              + (16).to_bytes(4, "little")
              + struct.pack("<HHIIHH", 1, 1, SR, 2 * SR, 2, 16)
              + b"data" + (length % 2**32).to_bytes(4, "little"))
    path = tmp_path / "days.wav"
    with path.open("wb") as handle:
        handle.write(header + first)  # past the size's remainder: samples, as in a recording
        handle.truncate(len(header) + 2**32)  # a hole: zeros the disk does not hold
        handle.seek(0, os.SEEK_END)
        handle.write(last)
    with sf.SoundFile(path) as alone:
        assert alone.frames == len(last) // 2
    with opened_audio(path) as audio:
        assert audio.frames == length // 2 and audio.samplerate == SR
        audio.seek(audio.frames - SR)
        tail = audio.read(dtype="int16")
    assert tail.tobytes() == last


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_audio_under_a_path_too_long_for_libsndfile_is_read(tmp_path, suffix):
    """libsndfile refuses a file name of 1024 bytes or more ("Supplied filename too long"): a
    recording deep in a tree of long folder names failed, in every reader. It is read."""
    deep = tmp_path.joinpath(*[f"site{k}-" + "x" * 200 for k in range(6)])
    deep.mkdir(parents=True)
    path = deep / f"rec{suffix}"
    assert len(os.fsencode(path)) >= 1024
    samples = tone(440.0, 1.5, SR) * 0.5
    with path.open("wb") as handle:  # soundfile cannot write it by its name either
        sf.write(handle, samples, SR, format=suffix[1:].upper())
    shutil.copy(path, tmp_path / f"short{suffix}")
    with pytest.raises(sf.LibsndfileError, match="too long"):
        sf.info(str(path))
    read = torch.cat(list(read_mono(path, SR)))
    assert torch.equal(read, torch.cat(list(read_mono(tmp_path / f"short{suffix}", SR))))
    assert header_seconds(path) == len(samples) / SR


def test_a_finished_wav_with_chunks_after_its_data_is_read_as_its_header_says(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, tone(440.0, 1.0, SR) * 0.5, SR, subtype="PCM_16")
    data = bytearray(whole.read_bytes())
    data += b"LIST" + (12).to_bytes(4, "little") + b"INFOISFT\x00\x00\x00\x00"
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    (tmp_path / "tagged.wav").write_bytes(bytes(data))
    id3v1 = b"TAG" + b"dawn chorus".ljust(30, b"\0") + b"site 3".ljust(95, b"\0")
    trailers = {"id3.wav": whole.read_bytes() + id3v1,  # what tagging tools append to any file
                "padded.wav": whole.read_bytes() + bytes(5000),  # to a disk's cluster
                "both.wav": bytes(data) + bytes(700)}
    for name, content in trailers.items():
        (tmp_path / name).write_bytes(content)
    for name in ["tagged.wav", *trailers]:
        assert unfinished_wav(tmp_path / name) is None, name
        assert torch.equal(torch.cat(list(read_mono(tmp_path / name, SR))),
                           torch.cat(list(read_mono(whole, SR)))), name
    for name, content in (("text.wav", b"not audio"), ("empty.wav", b"")):
        (tmp_path / name).write_bytes(content)
        assert unfinished_wav(tmp_path / name) is None
    header_only = bytes(never_finished(whole, tmp_path / "x.wav").read_bytes()[:44])
    (tmp_path / "header.wav").write_bytes(header_only)  # nothing after the header: no samples
    assert unfinished_wav(tmp_path / "header.wav") is None


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([1, 3, 6, 7, 0xFFFE, 2, 0]), st.integers(0, 3),
       st.sampled_from([0, 1, 8000, 48_000, 2**32 - 1]),
       st.sampled_from([0, 8, 16, 24, 32, 64, 12]), st.binary(max_size=12),
       st.binary(max_size=64))
def test_any_never_finished_wav_is_audio_or_one_line(tmp_path, tag, channels, rate, bits, extra,
                                                     tail):
    """Whatever its format chunk says and whatever follows it, a WAV whose sizes are 0 is read
    as that many whole frames of that format, or refused in one line naming it."""
    fmt = (tag.to_bytes(2, "little") + channels.to_bytes(2, "little") + rate.to_bytes(4, "little")
           + bytes(4) + (channels * bits // 8 % 65536).to_bytes(2, "little")
           + bits.to_bytes(2, "little") + extra)
    path = tmp_path / "rec.wav"
    path.write_bytes(b"RIFF" + bytes(4) + b"WAVEfmt " + len(fmt).to_bytes(4, "little") + fmt
                     + b"\x00" * (len(fmt) % 2) + b"data" + bytes(4) + tail)
    try:
        with opened_audio(path) as audio:
            frames = audio.read(dtype="float32", always_2d=True)
    except Esc50Error as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        layout = unfinished_wav(path)
        if layout is not None:
            assert frames.shape == (len(tail) // (channels * bits // 8), channels)
