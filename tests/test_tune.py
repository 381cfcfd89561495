"""esc50 tune: settings searched on the training folds only (the outer fold never read during
the search, scored once by the final run), a study that continues and that two worker
processes share, ordinary trial run folders, and the best settings as a config file."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import esc50
from esc50.cli.main import cli
from esc50.commands.tune import Dimension, parse_dimension, with_setting
from esc50.core.config import TaskConfig, load_config
from esc50.core.errors import Esc50Error
from esc50.core.training.trainer import Trainer
from tests.conftest import STFT_FLAGS, full_disk_at, write_synthetic_dataset

pytest.importorskip("optuna")

SMALL = ["--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
         "--batch-size", "8", "--no-progress"]


def test_search_spaces_parse_and_set_keys_options_and_spec_options():
    assert parse_dimension("learning_rate=1e-4:1e-2:log") == Dimension(
        "learning_rate", 1e-4, 1e-2, True)
    assert parse_dimension("batch_size=8:32") == Dimension("batch_size", 8, 32)
    assert parse_dimension("optimizer=adam|adamw").choices == ("adam", "adamw")
    for bad, message in [("lr", "expected KEY=low"), ("x=1:0", "expected low < high"),
                         ("x=0:1:log", "low > 0"), ("x=a:b", "is not a number")]:
        with pytest.raises(Esc50Error, match=message):
            parse_dimension(bad)
    config = TaskConfig().override(augs=["mixup:alpha=0.3,p=1", "specaugment"])
    changed = with_setting(config, "plugins.mixup.alpha", 0.7)  # the spec's own option
    assert changed.augs == ["mixup:alpha=0.7,p=1", "specaugment"]
    table = with_setting(config, "plugins.specaugment.freq_masks", 3)  # not in its spec
    assert table.options["plugins.specaugment"]["freq_masks"] == 3
    assert with_setting(config, "learning_rate", 0.01).learning_rate == 0.01


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_a_search_never_reads_the_outer_fold_and_scores_it_once(tmp_path, monkeypatch):
    from esc50.core.data import audiocache
    from esc50.core.files import digest

    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    opened = []
    load, sha = audiocache.load_clip, digest.file_sha256
    monkeypatch.setattr(audiocache, "load_clip", lambda p, *a, **k: opened.append(p) or
                        load(p, *a, **k))
    monkeypatch.setattr(digest, "file_sha256", lambda p: opened.append(p) or sha(p))
    lines = []
    result = esc50.tune(["learning_rate=1e-3:1e-2:log"], name="study", trials=3, data=str(data),
                        val_fold=1, output_dir=str(tmp_path / "runs"), sample_rate=8000,
                        length_wav=8000, batch_size=8, num_epochs=2, progress=False,
                        log=lines.append, **{f"plugins.logmel.{k}": v for k, v in
                                             {"n_fft": 256, "win_length": 256, "hop_length": 64,
                                              "n_mels": 32}.items()})
    assert opened and not [p for p in opened if Path(p).name.startswith("1-")]  # fold 1 unread
    assert result["trials"] == {"complete": 3} and result["best"]["outer_fold"] == 1
    assert result["best"]["inner_folds"] == [2]
    root = tmp_path / "runs" / "study"
    trials = sorted(p.name for p in root.glob("trial-*"))
    assert trials == ["trial-0000", "trial-0001", "trial-0002"]
    split = json.loads((root / "trial-0000" / "split.json").read_text())
    assert all(Path(n).name[0] in "23" for n in split["train"] + split["val"])
    assert "folds 1 left out" in split["description"]
    assert (root / "trial-0000" / "history.csv").is_file()
    best = load_config(result["config"])
    assert best.val_fold == 1 and best.ignore_folds == [] and \
        best.learning_rate == result["best"]["settings"]["learning_rate"]
    assert any("trial 2: inner accuracy" in line and "best so far" in line for line in lines)
    report = CliRunner().invoke(cli, ["report", str(root), "--out", str(tmp_path / "report")])
    assert report.exit_code == 0 and "trial-0002" in report.output
    args = ["tune", "--name", "study", "--output-dir", str(tmp_path / "runs")]
    final = CliRunner().invoke(cli, [*args, "--final"])
    assert final.exit_code == 0, final.output
    assert "outer fold 1: " in final.output and "scored once" in final.output
    assert any(Path(p).name.startswith("1-") for p in opened)  # read now, by the final run
    again = CliRunner().invoke(cli, [*args, "--final"])
    assert again.exit_code == 1 and "already scored once" in again.output
    shown = CliRunner().invoke(cli, [*args, "--show"])
    assert shown.exit_code == 0 and "best: trial" in shown.output


def finished(database: Path) -> int:
    """Trials of the study that ran to their end or were pruned (the median pruner may stop a
    trial whose inner score falls behind)."""
    with sqlite3.connect(database) as db:
        return db.execute("SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
                          ).fetchone()[0]


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_two_worker_processes_share_one_study_and_it_continues(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    args = ["tune", "--name", "shared", "--data", str(data), "--val-fold", "3",
            "--output-dir", str(tmp_path / "runs"), "--space", "learning_rate=1e-3:1e-2:log",
            "--space", "optimizer=adam|adamw", *SMALL]
    two = [*args, "--epochs", "2"]
    result = CliRunner().invoke(cli, [*two, "--trials", "4", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    database = tmp_path / "runs" / "shared" / "study.db"
    with sqlite3.connect(database) as db:
        workers = {row[0] for row in db.execute(
            "SELECT value_json FROM trial_user_attributes WHERE key = 'worker'")}
    assert len(workers) == 2 and finished(database) == 4
    more = CliRunner().invoke(cli, [*two, "--trials", "1"])  # the same command continues it
    assert more.exit_code == 0 and finished(database) == 5
    counts = re.search(r"^trials: (.+)$", more.output, re.M)[1]  # "4 complete, 1 pruned"
    states = dict(reversed(part.split(" ")) for part in counts.split(", "))
    assert set(states) <= {"complete", "pruned"} and sum(map(int, states.values())) == 5
    other = CliRunner().invoke(cli, [*args, "--epochs", "3", "--trials", "1"])
    assert other.exit_code == 1 and "was started with other settings (num_epochs)" in \
        other.output


def trial_states(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())


def running_with_worker(database: Path) -> int:
    """The running trials of the study that name their worker (0 before its tables are made,
    or while it is locked)."""
    if not database.is_file():  # connecting would make the file
        return 0
    try:
        with sqlite3.connect(database) as db:
            return db.execute(
                "SELECT COUNT(*) FROM trials JOIN trial_user_attributes USING (trial_id) "
                "WHERE state = 'RUNNING' AND key = 'worker'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def spawned_children(parent: int) -> list[int]:
    """The worker processes ``parent`` started (multiprocessing's spawn, not its resource
    tracker), from Linux's /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers in Linux's /proc")
def test_a_worker_killed_mid_trial_leaves_its_trial_failed_not_running_for_good(tmp_path):
    """A worker the system kills (as it does when memory runs out) cannot record its trial's
    end: the trial stayed "running" in the study for good. The command records it as failed,
    saying how the worker ended, and names what was not run."""
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    database = tmp_path / "runs" / "killed" / "study.db"
    command = [sys.executable, "-m", "esc50", "tune", "--name", "killed", "--data", str(data),
               "--val-fold", "3", "--output-dir", str(tmp_path / "runs"), "--space",
               "learning_rate=1e-3:1e-2:log", "--epochs", "30", "--trials", "4", "--jobs", "2",
               *SMALL]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    while process.poll() is None and running_with_worker(database) < 2:
        time.sleep(0.05)
    victim = spawned_children(process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr  # the other worker's trials are a study's result
    warning = next(line for line in stdout.splitlines() if line.startswith("warning: worker "))
    said = re.fullmatch(r"warning: worker \d was killed by SIGKILL \(as the system ends a "
                        r"process when memory runs out: fewer --jobs need less\): its trial "
                        r"(\d) recorded as failed(?:, and (1) of its 2 trials not run)?; the "
                        r"study keeps the trials it finished", warning)
    assert said, warning  # "not run" unless the worker was killed in its last trial
    states = trial_states(database)
    assert states["FAIL"] == 1 and "RUNNING" not in states
    assert sum(states.values()) == 4 - int(said[2] or 0)
    with sqlite3.connect(database) as db:
        errors = db.execute("SELECT trials.number, value_json FROM trial_user_attributes JOIN "
                            "trials USING (trial_id) WHERE key = 'error'").fetchall()
    assert len(errors) == 1 and errors[0][0] == int(said[1]) and json.loads(
        errors[0][1]).startswith("its worker process was killed by SIGKILL")
    show = CliRunner().invoke(cli, ["tune", "--name", "killed", "--output-dir",
                                    str(tmp_path / "runs"), "--show"])
    assert "running" not in show.output and " 1 fail" in show.output, show.output


def tune_args(data, tmp_path, *extra):
    return ["tune", "--data", str(data), "--val-fold", "1", "--output-dir", str(tmp_path / "runs"),
            "--name", "s", "--epochs", "1", *SMALL, *extra]


@pytest.mark.parametrize("storage, message", [
    ("study.db", "--storage 'study.db' is not a database URL (for example sqlite:///"),
    ("sqlite:///{tmp}/absent/study.db", "the folder {tmp}/absent does not exist"),
    ("postgresql://me@localhost/db", "its database driver is not installed (no module named "
                                     "'psycopg"),  # psycopg or psycopg2, by SQLAlchemy's version
    ("sqlite:///{tmp}/not-a-db.db", "file is not a database"),
])
def test_a_storage_that_cannot_hold_a_study_is_one_line_naming_it(tmp_path, storage, message):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    (tmp_path / "not-a-db.db").write_text("these are not the tables you are looking for\n" * 40)
    storage, message = storage.format(tmp=tmp_path), message.format(tmp=tmp_path)
    result = CliRunner().invoke(cli, tune_args(data, tmp_path, "--space", "learning_rate=1e-3:1e-2",
                                               "--storage", storage))
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert message in result.output and storage in result.output


def test_a_space_for_a_plugin_the_run_lacks_or_a_bad_end_is_refused_before_any_trial(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    unused = CliRunner().invoke(cli, tune_args(data, tmp_path, "--model", "plugins.kumar",
                                               "--space", "plugins.crnn.hidden_size=8:16"))
    assert unused.exit_code == 1
    assert "option plugins.crnn.hidden_size is for plugins.crnn, which this run does not use" \
        in unused.output
    high = CliRunner().invoke(cli, tune_args(data, tmp_path, "--space", "train_ratio=0.5:1.5"))
    assert high.exit_code == 1 and "train_ratio" in high.output
    assert not (tmp_path / "runs" / "s").exists() or not any((tmp_path / "runs" / "s").glob(
        "trial-*"))


def test_tune_exits_non_zero_when_every_trial_failed(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    result = CliRunner().invoke(cli, tune_args(data, tmp_path, "--trials", "2", "--space",
                                               "plugins.logmel.n_mels=400|500"))
    assert result.exit_code == 1, result.output
    assert "every trial failed (2): see each one's error above" in result.output
    assert result.output.count("failed:") == 2


@pytest.mark.parametrize("where, message", [
    ("epoch", "interrupted in epoch 1 before any epoch finished"),
    ("save", "interrupted while saving epoch 1; continue with"),
])
def test_ctrl_c_in_a_trial_stops_the_study_not_only_the_trial(tmp_path, monkeypatch, where,
                                                                 message):
    """Ctrl-C (a KeyboardInterrupt where the signal lands: in an epoch, or while a checkpoint
    is written) ends ``esc50 tune`` in one line; before, the trial was recorded as failed and
    the next one started."""
    from esc50.core.results import folder as rundir

    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    landed = []

    def ctrl_c(*args):
        landed.append(args)
        raise KeyboardInterrupt

    if where == "epoch":
        monkeypatch.setattr(Trainer, "run_epoch", ctrl_c)
    else:
        monkeypatch.setattr(rundir, "save_checkpoint", ctrl_c)
    result = CliRunner().invoke(cli, tune_args(data, tmp_path, "--trials", "3", "--space",
                                               "learning_rate=1e-3:1e-2:log"))
    assert result.exit_code == 1 and len(landed) == 1, result.output
    assert result.output.rstrip().splitlines()[-1].startswith(f"Error: {message}")
    assert "failed:" not in result.output


def test_a_full_disk_in_a_trial_stops_the_study_in_one_line(tmp_path, monkeypatch):
    """A trial that cannot store its checkpoint fails for the disk, not for its settings: the
    study stops there, instead of recording it as failed and starting trials that would fail
    the same way."""
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    full_disk_at(".last.pt.", monkeypatch)
    result = CliRunner().invoke(cli, tune_args(data, tmp_path, "--trials", "3", "--space",
                                               "learning_rate=1e-3:1e-2:log"))
    last = result.output.rstrip().splitlines()[-1]
    assert result.exit_code == 1 and last.startswith("Error: cannot write "), result.output
    assert last.endswith("/last.pt: No space left on device; nothing was written")
    assert "failed:" not in result.output and "trial 1" not in result.output

