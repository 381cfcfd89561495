"""Cross-validation fold assignment and resumption, and the comparison report."""

import csv
import json
import shutil

import pytest

from click.testing import CliRunner
from PIL import Image

from esc50.cli.main import cli
from esc50.core.data.clips import find_clips
from esc50.core.data.split import make_split
from esc50.core.training.trainer import Trainer
from tests.conftest import (STFT_FLAGS, killed_mid_message, small_config,
                            write_synthetic_dataset)

SMALL = ["--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
         "--set", "num_classes=4", "--batch-size", "16", "--no-progress"]


def test_fold_assignment_of_real_esc50_names(real_data):
    config = small_config(real_data, num_classes=50, val_fold=4)
    table = find_clips(real_data, config)
    train, val = make_split(table, config, {}).indices(table)
    for i in val:
        assert table.clips[i].path.name.startswith("4-") and table.clips[i].fold == 4
    for i in train:
        assert not table.clips[i].path.name.startswith("4-")
    assert len(val) == 400 and len(train) == len(table.clips) - 400


def test_cv_trains_one_run_per_fold_and_resumes(tmp_path, monkeypatch):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    args = ["cv", "--data", str(data), "--epochs", "2", "--output-dir", str(tmp_path / "runs"),
            "--name", "tones", *SMALL]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    runs = tmp_path / "runs" / "tones"
    summary = json.loads((runs / "cv.json").read_text())
    assert list(summary["folds"]) == ["1", "2", "3"]
    for fold in (1, 2, 3):
        metrics = json.loads((runs / f"fold-{fold}" / "metrics.json").read_text())
        assert metrics["split"] == f"validation fold {fold}" and metrics["val_clips"] == 8
        assert summary["folds"][str(fold)] == metrics["final_val_accuracy"]
    assert "mean accuracy" in result.output

    (runs / "fold-3" / "metrics.json").unlink()  # as if killed between last.pt and metrics
    shutil.rmtree(runs / "fold-2")  # and fold 2 trained again, interrupted in its epoch 2
    original = Trainer.run_epoch

    def interrupt_fold_2_in_epoch_2(self, epoch, training):
        if self.config.val_fold == 2 and epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, training)

    monkeypatch.setattr(Trainer, "run_epoch", interrupt_fold_2_in_epoch_2)
    cut = CliRunner().invoke(cli, args)
    assert cut.exit_code == 1 and "interrupted in epoch 2; last.pt holds epoch 1" in cut.output
    monkeypatch.setattr(Trainer, "run_epoch", original)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "fold 1: already trained" in again.output
    assert "fold 2: resuming" in again.output and "fold 3: resuming" in again.output
    assert json.loads((runs / "cv.json").read_text()) == summary  # exact resume: same results



def test_cv_decodes_and_featurizes_the_clips_once_for_all_folds(tmp_path, monkeypatch):
    """The folds share the dataset's clip list (read once), decoded audio and features (each
    clip decoded once, the featurizer run once), and sharing changes no result: a fold trained
    on its own scores the same."""
    from esc50.core.data import audiocache
    from esc50.core.training import batches
    from esc50.plugins.datasets.esc50 import ESC50

    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    decoded, featurized, read = [], [], []
    load_clip, featurize, read_folder = audiocache.load_clip, batches.featurize_all, ESC50.read
    monkeypatch.setattr(audiocache, "load_clip",
                        lambda *a, **k: decoded.append(a[0]) or load_clip(*a, **k))
    monkeypatch.setattr(batches, "featurize_all",
                        lambda *a: featurized.append(1) or featurize(*a))
    monkeypatch.setattr(ESC50, "read", lambda self, root: read.append(root) or read_folder(self, root))
    args = ["cv", "--data", str(data), "--epochs", "1", "--output-dir", str(tmp_path / "runs"),
            "--name", "shared", *SMALL]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    clips = len(list(data.glob("*.wav")))
    assert len(decoded) == clips == len(set(decoded)) and featurized == [1] and len(read) == 1
    assert result.output.count("reused") == 2  # folds 2 and 3
    alone = CliRunner().invoke(cli, ["train", "--data", str(data), "--epochs", "1", "--val-fold",
                                     "3", "--output-dir", str(tmp_path / "runs"), "--run-name",
                                     "fold-3-alone", *SMALL])
    assert alone.exit_code == 0, alone.output
    histories = [[{k: v for k, v in row.items() if k != "seconds"} for row in
                  csv.DictReader(open(tmp_path / "runs" / name / "history.csv"))]
                 for name in ("shared/fold-3", "fold-3-alone")]
    assert histories[0] == histories[1] and float(histories[0][0]["train_loss"]) > 0

def test_cv_refuses_folds_that_are_not_there(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2))
    result = CliRunner().invoke(cli, ["cv", "--data", str(data), "--name", "x", "--folds",
                                      "1,5", *SMALL])
    assert result.exit_code == 1 and "fold(s) 5 have no clips (folds present: 1, 2)" in \
        result.output


def test_report_writes_a_table_and_figures(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data")
    for model in ("crnn", "lstm"):
        result = CliRunner().invoke(cli, [
            "train", "--model", f"plugins.{model}", "--data", str(data), "--epochs", "2",
            "--val-fold", "1", "--output-dir", str(tmp_path / "runs"), "--run-name", model,
            *SMALL])
        assert result.exit_code == 0, result.output
        assert Image.open(tmp_path / "runs" / model / "curves.png").format == "PNG"
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "runs" / "crnn"),
                                      str(tmp_path / "runs" / "lstm"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = [line for line in (out / "report.md").read_text().splitlines()
             if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in table[1:]]
    assert [r["model"] for r in rows] == ["plugins.crnn", "plugins.lstm"]
    for row, model in zip(rows, ("crnn", "lstm")):
        metrics = json.loads((tmp_path / "runs" / model / "metrics.json").read_text())
        assert row["epochs"] == "2"
        assert row["val acc (final epoch)"] == f"{metrics['final_val_accuracy']:.1%}"
    for name in ("crnn-curves.png", "crnn-confusion.png", "lstm-curves.png", "lstm-confusion.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 300


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_cv_jobs_trains_folds_in_parallel_processes_with_the_same_results(tmp_path):
    """Two folds at a time, each in a process of its own, the audio decoded once and shared
    through the disk cache: the same per-fold figures as the folds trained one after another."""
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    common = ["cv", "--data", str(data), "--epochs", "2", "--output-dir", str(tmp_path / "runs"),
              "--set", f"audio_cache={tmp_path / 'audio'}", *SMALL]
    one = CliRunner().invoke(cli, [*common, "--name", "one"])
    assert one.exit_code == 0, one.output
    both = CliRunner().invoke(cli, [*common, "--name", "two", "--jobs", "2"])
    assert both.exit_code == 0, both.output
    assert "[fold 3]" in both.output and "decoded" not in both.output  # mapped, not decoded
    for fold in (1, 2, 3):
        rows = [list(csv.DictReader(open(tmp_path / "runs" / name / f"fold-{fold}" /
                                         "history.csv"))) for name in ("one", "two")]
        for a, b in zip(*rows):
            for key in ("train_loss", "val_loss", "val_accuracy"):
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-3, abs=1e-6), key
    summaries = [json.loads((tmp_path / "runs" / name / "cv.json").read_text())
                 for name in ("one", "two")]
    assert summaries[0]["folds"] == pytest.approx(summaries[1]["folds"])


def test_folds_side_by_side_plan_their_memory_within_their_share(tmp_path, monkeypatch):
    """Folds started together all see the same available memory: each plans within its share,
    the command's own share (here a million, as if that many commands ran side by side) split
    again between its two folds, so that here no fold finds room for its data and each says
    so in one line."""
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2))
    monkeypatch.setenv("ESC50_MEMORY_SHARES", "1000000")
    result = CliRunner().invoke(cli, ["cv", "--data", str(data), "--epochs", "1", "--output-dir",
                                      str(tmp_path / "runs"), "--name", "shared", "--jobs", "2",
                                      "--set", f"audio_cache={tmp_path / 'audio'}", *SMALL])
    assert result.exit_code == 1
    for fold in (1, 2):
        failure = next(line for line in result.output.splitlines()
                       if line.startswith(f"[fold {fold}] failed: "))
        assert " GiB is available (" in failure and \
            "split 2000000 ways (ESC50_MEMORY_SHARES))" in failure, failure
    monkeypatch.setenv("ESC50_MEMORY_SHARES", "two")
    refused = CliRunner().invoke(cli, ["cv", "--data", str(data), "--epochs", "1",
                                       "--output-dir", str(tmp_path / "runs"), "--name", "bad",
                                       "--jobs", "2", *SMALL])
    assert refused.exit_code == 1 and refused.output.strip().splitlines()[-1] == (
        "Error: ESC50_MEMORY_SHARES='two': expected a whole number of at least 1")


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_cv_jobs_reports_a_failed_fold_and_keeps_the_others(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    root = tmp_path / "runs" / "broken"
    root.mkdir(parents=True)
    (root / "fold-2").write_text("a file where fold 2's run folder goes")
    result = CliRunner().invoke(cli, ["cv", "--data", str(data), "--epochs", "1", "--output-dir",
                                      str(tmp_path / "runs"), "--name", "broken", "--jobs", "3",
                                      "--set", f"audio_cache={tmp_path / 'audio'}", *SMALL])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: 1 fold(s) failed (fold 2: ") and "finished: fold 1: " in last
    assert "[fold 2] failed: " in result.output
    for fold in (1, 3):
        assert (root / f"fold-{fold}" / "metrics.json").is_file()
    assert not (root / "cv.json").exists()


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_cv_jobs_names_a_fold_killed_mid_message_and_the_others_finish(tmp_path, monkeypatch):
    """A fold killed halfway through writing a line to the command (as the out-of-memory killer
    may strike) is named with how it ended; the others finish and the same command trains it.
    With one queue for all folds, the killed fold held the queue's lock and left half a message
    in it: the other folds and the command hung for good."""
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2))
    (tmp_path / "site").mkdir()
    killed = killed_mid_message("log", tmp_path / "site", monkeypatch)
    args = ["cv", "--data", str(data), "--epochs", "1", "--output-dir", str(tmp_path / "runs"),
            "--name", "killed", "--jobs", "2", "--set", f"audio_cache={tmp_path / 'audio'}",
            *SMALL]
    result = CliRunner().invoke(cli, args)
    assert killed.exists() and result.exit_code == 1
    lost = [fold for fold in (1, 2) if f"[fold {fold}] failed: its process was killed by SIGKILL "
            "(as the system ends a process when memory runs out: fewer --jobs need less)"
            in result.output]
    assert len(lost) == 1, result.output
    kept = 3 - lost[0]
    assert (tmp_path / "runs" / "killed" / f"fold-{kept}" / "metrics.json").is_file()
    assert result.output.strip().splitlines()[-1].startswith(
        f"Error: 1 fold(s) failed (fold {lost[0]}: its process was killed by SIGKILL")
    monkeypatch.delenv("ESC50_DIE_WRITING")
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert f"[fold {kept}] fold {kept}: already trained in " in again.output  # not trained twice
    assert json.loads((tmp_path / "runs" / "killed" / "cv.json").read_text())["folds"]


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_cv_jobs_starts_no_fold_after_one_that_found_the_disk_full(tmp_path, small_disk):
    """The folds side by side fail on a disk of 64 KiB (a checkpoint is larger); the third,
    which would fail the same way, never starts."""
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    result = CliRunner().invoke(cli, ["cv", "--data", str(data), "--epochs", "1", "--output-dir",
                                      str(small_disk / "runs"), "--name", "full", "--jobs", "2",
                                      "--set", f"audio_cache={tmp_path / 'audio'}", *SMALL])
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and last.startswith("Error: 2 fold(s) failed (fold 1: "), \
        result.output
    assert last.count(": No space left on device; ") == 2 and "finished: none" in last
    assert "[fold 3]" not in result.output
