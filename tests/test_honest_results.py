"""Honest results: grouped random splits, recorded splits checked on resume and evaluate, cv
that never mixes experiments, strict CSV rows, run-directory locks."""

import json
import re
import statistics

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.results import folder as rundir
from esc50.core.data.clips import find_clips
from esc50.core.errors import Esc50Error
from esc50.core.data.split import grouped_random_split, make_split
from tests.conftest import (FREQS, SR, STFT_FLAGS, small_config, tone,
                            write_synthetic_dataset)

SMALL = ["--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
         "--set", "num_classes=4", "--batch-size", "16", "--no-progress"]


def write_recordings(root, recordings_per_class=6, takes=3):
    """An ESC-50 layout whose clips come in takes of one recording (shared ``src_file``)."""
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for target, freq in enumerate(FREQS):
        for r in range(recordings_per_class):
            source = f"{target}{r:03d}"
            for take in "ABC"[:takes]:
                name = f"1-{source}-{take}-{target}.wav"
                sf.write(root / "audio" / name, tone(freq, seed=int(source) * 7 + ord(take)), SR)
                rows.append(f"{name},1,{target},class{target},False,{source},{take}")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


def test_random_split_keeps_recordings_together_and_is_stratified(tmp_path):
    data = write_recordings(tmp_path / "data")
    config = small_config(data, split="random", train_ratio=0.7, seed=3)
    table = find_clips(data, config)
    split = make_split(table, config, {})
    train, val = split.indices(table)
    assert sorted(train + val) == list(range(len(table.clips))) and not set(train) & set(val)
    train_groups = {table.clips[i].group for i in train}
    assert not train_groups & {table.clips[i].group for i in val}
    per_class = np.bincount([table.clips[i].target for i in val], minlength=4)
    assert per_class.tolist() == [6, 6, 6, 6]  # 30 % of 18 clips, in whole recordings of 3
    assert "grouped random split" in split.description and "seed=3" in split.description
    assert make_split(table, config, {}).val == split.val
    assert make_split(table, config.override(seed=4), {}).val != split.val


def test_without_a_csv_the_clip_part_of_a_name_is_the_recording():
    groups = ["a", "a", "a", "b", "b", "c", "d", "d", "e", "e"]
    labels = [0] * 10
    for seed in range(20):
        train, val, _ = grouped_random_split(groups, labels, 0.6, seed)
        assert not {groups[i] for i in train} & {groups[i] for i in val} and train


def test_a_run_stores_its_split_and_resume_or_evaluate_refuse_changed_data(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2))
    runs = tmp_path / "runs"
    base = ["--data", str(data), "--output-dir", str(runs), *SMALL]
    result = CliRunner().invoke(cli, ["train", *base, "--split", "random", "--epochs", "1",
                                      "--set", "train_ratio=0.5", "--run-name", "r"])
    assert result.exit_code == 0, result.output
    stored = json.loads((runs / "r" / "split.json").read_text())
    assert len(stored["train"]) + len(stored["val"]) == 16 and len(stored["digests"]) == 16

    for k in range(2):  # clips added to the folder after the run
        sf.write(data / f"2-9{k}-A-0.wav", tone(FREQS[0], seed=90 + k), SR)
    refused = CliRunner().invoke(cli, ["train", "--resume", str(runs / "r"), "--epochs", "2"])
    assert refused.exit_code == 1 and refused.output.count("\n") == 1, refused.output
    assert "changed since the run was trained: 2 clip(s) added (2-90-A-0.wav, 2-91-A-0.wav)" \
        in refused.output and "--allow-changed-data" in refused.output
    refused = CliRunner().invoke(cli, ["evaluate", str(runs / "r")])
    assert refused.exit_code == 1 and "2 clip(s) added" in refused.output

    accepted = CliRunner().invoke(cli, ["train", "--resume", str(runs / "r"), "--epochs", "2",
                                        "--allow-changed-data"])
    assert accepted.exit_code == 0, accepted.output
    assert "warning: the data in" in accepted.output and "extending" in accepted.output
    metrics = json.loads((runs / "r" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["train_clips"] + metrics["val_clips"] == 16
    report = json.loads(CliRunner().invoke(cli, ["evaluate", str(runs / "r"), "--json",
                                                 "--allow-changed-data"]).stdout)
    assert report["clips"] == len(stored["val"])

    sf.write(data / stored["val"][0], tone(FREQS[3], seed=5), SR)  # a clip modified in place
    (data / "2-90-A-0.wav").unlink()
    (data / "2-91-A-0.wav").unlink()
    refused = CliRunner().invoke(cli, ["evaluate", str(runs / "r")])
    assert f"1 clip(s) modified ({stored['val'][0]})" in refused.output


def test_resume_refuses_flags_that_change_the_run(synthetic_data, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--val-fold", "1",
                                      "--output-dir", str(tmp_path), "--run-name", "r",
                                      "--epochs", "1", *SMALL])
    assert result.exit_code == 0, result.output
    refused = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "r"), "--epochs", "3",
                                       "--lr", "0.5", "--set", "plugins.logmel.n_mels=16"])
    assert refused.exit_code == 1 and refused.output.count("\n") == 1
    assert "--lr, --set would change the run" in refused.output
    shorter = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "r"), "--epochs", "0"])
    assert "--epochs 0: " in shorter.output and "has already trained 1 epochs" in shorter.output


def test_cv_rerun_with_other_settings_is_refused_naming_the_keys(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    args = ["cv", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--name", "x",
            *SMALL]
    first = CliRunner().invoke(cli, [*args, "--epochs", "1"])
    assert first.exit_code == 0, first.output
    summary = json.loads((tmp_path / "runs" / "x" / "cv.json").read_text())
    accuracies = list(summary["folds"].values())
    assert summary["std_accuracy"] == pytest.approx(statistics.stdev(accuracies))
    assert summary["std"] == "sample standard deviation (n - 1) over folds"
    assert "(sample standard deviation (n - 1) over folds)" in first.output

    other_model = CliRunner().invoke(cli, [*args, "--epochs", "1", "--model", "plugins.lstm"])
    assert other_model.exit_code == 1 and other_model.output.count("\n") == 1
    assert "model: 'plugins.crnn' there, 'plugins.lstm' now" in other_model.output
    longer = CliRunner().invoke(cli, [*args, "--epochs", "2", "--lr", "0.01"])
    assert "learning_rate: 0.0003 there, 0.01 now" in longer.output
    assert "num_epochs: 1 there, 2 now" in longer.output
    assert json.loads((tmp_path / "runs" / "x" / "cv.json").read_text()) == summary
    same = CliRunner().invoke(cli, [*args, "--epochs", "1"])
    assert same.exit_code == 0 and same.output.count("already trained") == 3


def test_a_folder_written_by_another_process_is_refused(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2))
    (tmp_path / "runs" / "x").mkdir(parents=True)
    with rundir.locked(tmp_path / "runs" / "x", "use another --name"):
        result = CliRunner().invoke(cli, ["cv", "--data", str(data), "--output-dir",
                                          str(tmp_path / "runs"), "--name", "x", "--epochs", "1",
                                          *SMALL])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "is being written by another esc50 process" in result.output
    assert not (tmp_path / "runs" / "x" / "fold-1").exists()


@pytest.mark.parametrize("row, message", [
    ("1-100-A-0.wav,1,0,class0,False,100,A", "row 4 lists 1-100-A-0.wav again (first in row 2)"),
    ("1-300-A-0.wav,1,0,dog,False,300,A", "row 4 names target 0 'dog', but an earlier row names "
                                          "it 'class0'"),
    ("1-300-A-7.wav,1,7,class7,False,300,A", "row 4 has target 7, outside 0..3"),
    ("1-300-A-0.wav,1,-1,class0,False,300,A", "row 4 has target -1, outside 0..3"),
])
def test_bad_csv_rows_are_one_line_errors_naming_the_row(tmp_path, row, message):
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    (data / "meta").mkdir()
    for name in ("1-100-A-0.wav", "1-200-A-1.wav"):
        sf.write(data / "audio" / name, tone(300.0), SR)
    (data / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n"
        "1-100-A-0.wav,1,0,class0,False,100,A\n1-200-A-1.wav,1,1,class1,False,200,A\n"
        f"{row}\n")
    with pytest.raises(Esc50Error, match=re.escape(message)):
        find_clips(data, small_config(data))


def test_run_names_cannot_leave_the_output_folder(synthetic_data, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--val-fold", "1",
                                      "--output-dir", str(tmp_path / "runs"), "--run-name",
                                      "../escaped", "--epochs", "1", *SMALL])
    assert result.exit_code == 1 and "run_name '../escaped' must be a plain name" in result.output
    assert "decoded" not in result.output  # refused before anything was read
    assert not (tmp_path / "escaped").exists()
