"""Reliability, round two: hostile folders and CSVs, odd audio, impossible configs refused
before decoding, crash windows, and files readable by colleagues."""

import json
import os
import stat

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.data.audio import load_clip
from esc50.core.data.clips import find_clips, leftovers
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import (SR, STFT_FLAGS, small_config, tone, write_leftover,
                            write_synthetic_dataset)

SMALL = ["--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
         "--batch-size", "16", "--no-progress"]


def test_files_soundfile_cannot_read_are_listed_not_tracebacks(synthetic_data, tmp_path):
    (synthetic_data / "1-9-A-0.raw").write_bytes(np.zeros(800, np.int16).tobytes())
    (synthetic_data / "1-8-A-0.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A ")
    sf.write(synthetic_data / "2-7-A-1.aif", tone(700.0), SR, format="AIFF")  # short name
    table = find_clips(synthetic_data, small_config(synthetic_data))
    assert any(c.path.name == "2-7-A-1.aif" for c in table.clips)
    lines = leftovers(table)[0]
    assert "1-9-A-0.raw (not audio)" in lines and "1-8-A-0.m4a (not audio)" in lines
    with pytest.raises(Esc50Error, match="1-9-A-0.raw: cannot decode audio"):
        load_clip(synthetic_data / "1-9-A-0.raw", SR)


@pytest.mark.parametrize("encoding, delimiter, pad", [
    ("latin-1", ",", ""), ("utf-8-sig", ",", ""), ("utf-8", ";", ""), ("utf-8", ",", "  ")])
def test_meta_csv_as_spreadsheets_write_it(tmp_path, encoding, delimiter, pad):
    data = write_synthetic_dataset(tmp_path / "data", with_csv=True, folds=(1, 2))
    meta = data / "meta" / "esc50.csv"
    lines = meta.read_text().splitlines()
    lines = [delimiter.join(f"{pad}{cell}" for cell in line.split(",")) for line in lines]
    lines[1] = lines[1].replace("class0", "café")  # a non-ASCII class name
    lines = [line.replace("class0", "café") for line in lines]
    meta.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    table = find_clips(data, small_config(data))
    assert len(table.clips) == 16 and table.class_names[0] == "café"


def test_a_csv_without_the_columns_says_which_are_missing(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", with_csv=True, folds=(1,))
    (data / "meta" / "esc50.csv").write_text("file,fold,label\n1-1-A-0.wav,1,0\n")
    with pytest.raises(Esc50Error, match=r"the header lacks filename, target \(columns found: "
                                         r"file, fold, label\)"):
        find_clips(data, small_config(data))


def test_odd_audio_is_refused_or_treated_alike_in_training_and_prediction(tmp_path):
    left = tone(440.0, noise=0)
    sf.write(tmp_path / "cancel.wav", np.stack([left, -left], axis=1), SR)
    with pytest.raises(Esc50Error, match="cancel.wav: the channels cancel out when mixed"):
        load_clip(tmp_path / "cancel.wav", SR)
    sf.write(tmp_path / "loud.wav", 8.0 * left, SR, subtype="FLOAT")
    wav, _ = load_clip(tmp_path / "loud.wav", SR)
    assert float(wav.abs().max()) == 1.0  # clipped here as the int16 training cache clips


def test_a_clip_shorter_than_a_window_is_a_bad_file(synthetic_data, tmp_path):
    sf.write(synthetic_data / "2-99-A-1.wav", np.array([0.5], np.float32), SR)
    result = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--val-fold", "1",
                                      "--epochs", "1", "--output-dir", str(tmp_path), *SMALL])
    assert result.exit_code == 1
    assert "2-99-A-1.wav: 1 samples at 8000 Hz, shorter than one analysis window" in result.output
    skipped = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--val-fold", "1",
                                       "--epochs", "1", "--output-dir", str(tmp_path),
                                       "--skip-bad-files", *SMALL])
    assert skipped.exit_code == 0 and "warning: skipped" in skipped.output


@pytest.mark.parametrize("setting, message", [
    ("learning_rate=nan", "learning_rate=nan must be a positive number"),
    ("weight_decay=nan", "weight_decay=nan must be a number of at least 0"),
    ("seed=-1", "seed=-1 must be between 0 and 2**32 - 1"),
    ("length_wav=100", "featurizer plugins.logmel: a clip (length_wav=100 samples) is shorter "
                       "than one analysis window (n_fft=256)"),
    ("device=mps", "device='mps': esc50 runs on auto, cpu, cuda or cuda:N"),
    ("device=meta", "device='meta'"),
    ("length_wav=1000000000", "need about"),
])
def test_impossible_configs_are_refused_before_decoding(synthetic_data, tmp_path, setting,
                                                        message):
    result = CliRunner().invoke(cli, ["train", "--data", str(synthetic_data), "--val-fold", "1",
                                      "--output-dir", str(tmp_path), *SMALL, "--set", setting])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert message in result.output and "decoded 24 clips" not in result.output


def test_kumar_trains_when_the_last_batch_holds_one_clip(synthetic_data, tmp_path):
    config = small_config(synthetic_data, model="plugins.kumar", batch_size=15, num_epochs=1,
                          output_dir=str(tmp_path))  # 16 training clips: 15 + 1
    trainer = Trainer(config, load_registry(), log=lambda _: None)
    assert len(trainer.data.train_loader) == 1
    trainer.fit()


def test_crash_windows_leave_every_promised_file(synthetic_data, tmp_path, monkeypatch):
    from esc50.core.results import folder as rundir

    config = small_config(synthetic_data, num_epochs=2, output_dir=str(tmp_path), run_name="r")
    order = []
    real = rundir.save_checkpoint
    monkeypatch.setattr(rundir, "save_checkpoint",
                        lambda state, path: (order.append(path.name), real(state, path)))
    Trainer(config.override(num_epochs=1), load_registry(), log=lambda _: None).fit()
    assert order == ["best.pt", "last.pt"]  # a kill between them leaves last.pt an epoch behind
    write_leftover(tmp_path / "r" / "last.pt")  # what a write killed midway leaves

    def interrupted(state, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "save_checkpoint", interrupted)
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "r"), "--epochs", "2"])
    assert resumed.exit_code == 1
    assert "interrupted while saving epoch 2; continue with `esc50 train --resume" in \
        resumed.output
    assert not list((tmp_path / "r").glob(".*.tmp"))  # the leftover was cleaned up
    monkeypatch.setattr(rundir, "save_checkpoint", real)
    again = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "r"), "--epochs", "2"])
    assert again.exit_code == 0, again.output
    assert {"best.pt", "last.pt", "history.csv", "metrics.json"} <= \
        {p.name for p in (tmp_path / "r").iterdir()}


def test_report_on_a_damaged_run_and_a_hand_edited_config(synthetic_data, tmp_path):
    config = small_config(synthetic_data, num_epochs=1, output_dir=str(tmp_path), run_name="r")
    run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
    toml = (run_dir / "config.toml").read_text()
    (run_dir / "config.toml").write_text(toml.replace("n_mels = 32", "n_mels = 64"))
    clip = tmp_path / "c.wav"
    sf.write(clip, tone(300.0), SR)
    predicted = CliRunner().invoke(cli, ["predict", str(run_dir), str(clip)])
    assert predicted.exit_code == 0
    assert "config.toml differs from the checkpoint's config (plugins.logmel.n_mels); the " \
           "checkpoint's is " \
           "used" in predicted.output
    (run_dir / "metrics.json").write_text("{broken")
    broken = CliRunner().invoke(cli, ["report", str(run_dir), "--out", str(tmp_path / "rep")])
    assert broken.exit_code == 1 and broken.output.count("\n") == 1
    assert f"{run_dir / 'metrics.json'} is damaged" in broken.output
    (run_dir / "metrics.json").write_text('{"final_val_accuracy": 0.5}')  # valid, then
    (run_dir / "history.csv").unlink()  # no history: that is named
    missing = CliRunner().invoke(cli, ["report", str(run_dir), "--out", str(tmp_path / "rep")])
    assert missing.exit_code == 1 and "history.csv" in missing.output


def test_run_files_follow_the_umask(synthetic_data, tmp_path):
    old = os.umask(0o022)
    try:
        run_dir = Trainer(small_config(synthetic_data, num_epochs=1, output_dir=str(tmp_path),
                                       run_name="r"), load_registry(), log=lambda _: None).fit()
    finally:
        os.umask(old)
    for name in ("config.toml", "split.json", "last.pt", "last.pt.sha256", "metrics.json",
                 "curves.png", "history.csv"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o644, name
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 1
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 1
