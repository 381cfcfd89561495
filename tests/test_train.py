import csv
import json
import math
import subprocess
import sys
import time
from importlib.metadata import version

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.results.checkpoint import load_checkpoint
from esc50.core.config import load_config
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import STFT_FLAGS, small_config, write_leftover, write_synthetic_dataset

SMALL_FLAGS = ["--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
               "--set", "num_classes=4", "--batch-size", "8", "--no-progress"]


def test_crnn_learns_a_synthetic_tone_task(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=4)
    config = small_config(data, num_epochs=12, output_dir=str(tmp_path / "runs"),
                          run_name="tones", augs=["noise:min_snr_db=20,max_snr_db=30"])
    run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["final_val_accuracy"] >= 0.85  # chance is 0.25
    assert metrics["train_clips"] == 32 and metrics["val_clips"] == 16
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert len(rows) == 12 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    # the config as given, with the micro-batches a step was planned in (accumulate=0: planned)
    assert load_config(run_dir / "config.toml") == config.override(accumulate=1)


def test_runs_with_the_same_seed_are_identical(synthetic_data, tmp_path):
    def run(name):
        config = small_config(synthetic_data, output_dir=str(tmp_path), run_name=name,
                              augs=["noise"])
        run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
        return load_checkpoint(run_dir / "last.pt")

    first, second = run("a"), run("b")
    assert first["history"][-1]["train_loss"] == second["history"][-1]["train_loss"]
    for key, value in first["model"].items():
        assert torch.equal(value, second["model"][key]), key


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_a_compiled_model_trains_like_the_eager_one(synthetic_data, tmp_path):
    def run(name, **changes):
        config = small_config(synthetic_data, output_dir=str(tmp_path), run_name=name,
                              num_epochs=1, **changes)
        trainer = Trainer(config, load_registry(), log=lambda _: None)
        assert hasattr(trainer.step_model, "_orig_mod") == config.compile  # torch.compile's
        return load_checkpoint(trainer.fit() / "last.pt")

    eager, compiled = run("eager"), run("compiled", compile=True)
    assert compiled["model"].keys() == eager["model"].keys()  # loads into an uncompiled model
    assert compiled["history"][-1]["train_loss"] == pytest.approx(
        eager["history"][-1]["train_loss"], rel=1e-3)
    for key, value in eager["model"].items():
        torch.testing.assert_close(compiled["model"][key], value, rtol=1e-3, atol=1e-3)


def test_checkpoint_carries_what_prediction_needs(synthetic_data, tmp_path):
    config = small_config(synthetic_data, output_dir=str(tmp_path), run_name="r", num_epochs=1)
    run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
    state = load_checkpoint(run_dir / "best.pt")  # weights_only=True: no code runs on load
    assert state["class_names"] == ["0", "1", "2", "3"] and state["epoch"] == 1
    assert state["plugins"]["plugins.crnn"] == {"kind": "model", "id": "plugins.crnn",
                                                "package": "esc50", "version": version("esc50")}
    assert state["config"]["options"]["plugins.logmel"]["n_mels"] == 32


def test_cli_train_writes_a_run_directory(synthetic_data, tmp_path):
    result = CliRunner().invoke(cli, [
        "train", "--model", "plugins.crnn", "--aug", "noise", "--data", str(synthetic_data),
        "--epochs", "1", "--val-fold", "1", "--output-dir", str(tmp_path), "--run-name", "cli",
        "--no-progress", "--set", "sample_rate=8000", "--set", "length_wav=8000",
        *STFT_FLAGS, "--set", "num_classes=4", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert f"final validation accuracy {metrics['final_val_accuracy']:.3f} after 1 epochs" in \
        result.output and "best validation accuracy" not in result.output
    assert "best.pt: epoch 1, chosen on the same validation clips" in result.output
    assert {p.name for p in (tmp_path / "cli").iterdir()} == {
        "config.toml", "split.json", "history.csv", "metrics.json", "best.pt", "last.pt",
        "curves.png", "best.pt.sha256", "last.pt.sha256", ".lock", "MODEL_CARD.md"}


@pytest.mark.parametrize("args, message", [
    (["--model", "plugins.cnn"], "Error: unknown model 'plugins.cnn'; did you mean plugins.crnn"),
    (["--aug", "noise:min_snr_db=abc"], "option min_snr_db='abc' is not a valid float"),
    (["--set", "batch_size=0"], "config batch_size=0 must be positive"),
    (["--val-fold", "5"], "fold 5 has no clips"),
])
def test_cli_train_errors_are_one_line(synthetic_data, tmp_path, args, message):
    base = ["train", "--data", str(synthetic_data), "--output-dir", str(tmp_path), "--epochs", "1",
            "--val-fold", "1", "--set", "num_classes=4", "--set", "sample_rate=8000",
            "--set", "length_wav=8000"]
    result = CliRunner().invoke(cli, base + args)
    assert result.exit_code == 1
    assert message in result.output and result.output.count("\n") == 1, result.output


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ESC50_DATA", str(tmp_path / "absent"))
    result = CliRunner().invoke(cli, ["train", "--epochs", "1"])
    assert result.exit_code == 1
    assert "from $ESC50_DATA): run `esc50 download`" in result.output


@pytest.mark.slow
def test_one_epoch_on_real_esc50_clips(real_data, tmp_path):
    config = small_config(real_data, sample_rate=16000, length_wav=16000 * 5,
                          options={"plugins.logmel": {"n_fft": 512, "win_length": 512,
                                                      "hop_length": 256, "n_mels": 40}},
                          num_classes=50,
                          split="random", batch_size=64, num_epochs=1, keyword="1-*",
                          output_dir=str(tmp_path), run_name="real")  # fold 1: 400 clips
    trainer = Trainer(config, load_registry(), log=lambda _: None)
    assert len(trainer.data.train_set) + len(trainer.data.validation) == 400
    assert trainer.class_names[0] == "dog" and trainer.class_names[49] == "hand_saw"
    recordings = {}  # src_file of the official CSV -> the sides its clips went to
    meta = {row["filename"]: row["src_file"] for row in csv.DictReader(
        (real_data / "meta" / "esc50.csv").open())}
    for side, names in (("train", trainer.split.train), ("val", trainer.split.val)):
        for name in names:
            recordings.setdefault(meta[name.split("/")[-1]], set()).add(side)
    assert all(len(sides) == 1 for sides in recordings.values())  # no recording on both sides
    val_per_class = np.bincount(trainer.data.validation.labels.numpy(), minlength=50)
    assert 30 <= len(trainer.data.validation) <= 50 and val_per_class.max() <= 2
    run_dir = trainer.fit()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["split"].startswith("grouped random split")


def test_augmentations_touch_training_batches_only(synthetic_data, tmp_path):
    from esc50.core.plugin_api.contracts import Augmentation
    from esc50.core.plugin_api.hookspecs import hookimpl

    seen = []

    class Spy(Augmentation):
        """Record the batch sizes it is given."""

        name = "spy"

        def __init__(self, config, p: float = 1.0):
            super().__init__(p)

        def forward(self, wav, generator):
            seen.append(wav.shape[0])
            return wav

    @hookimpl(specname="register_augmentations")
    def hook(register):
        register(Spy)

    import types
    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(register_augmentations=hook), "test")
    config = small_config(synthetic_data, augs=["test.spy"], num_epochs=2, output_dir=str(tmp_path))
    trainer = Trainer(config, registry, log=lambda _: None)
    trainer.fit()
    # two training clips in the set-up pass (contract checks), steps of 2 and 4 clips measured
    # to plan memory, then two epochs of training
    assert seen[:3] == [2, 2, 4] and sum(seen[3:]) == 2 * len(trainer.data.train_set)
    assert len(trainer.data.validation) > 0


@pytest.mark.parametrize("policy", ["all", "one-of"])
def test_training_with_every_augmentation(synthetic_data, tmp_path, policy):
    augs = ["gaussian", "time_stretch", "pitch_shift:min_semitones=-1,max_semitones=1", "volume",
            "noise", "specaugment", "mixup"]
    config = small_config(synthetic_data, augs=augs, aug_policy=policy, num_epochs=1,
                          output_dir=str(tmp_path))
    run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["plugins"]) >= {"gaussian", "mixup", "specaugment"}
    assert metrics["plugins"]["mixup"]["id"] == "plugins.mixup"


def test_an_interrupted_run_resumes_to_the_same_weights(synthetic_data, tmp_path, monkeypatch):
    config = small_config(synthetic_data, num_epochs=4, augs=["noise", "specaugment", "mixup"],
                          output_dir=str(tmp_path), ema_decay=0.9, warmup_epochs=1,
                          label_smoothing=0.1)
    straight = Trainer(config.override(run_name="straight"), load_registry(),
                       log=lambda _: None).fit()

    original = Trainer.run_epoch

    def interrupt_in_epoch_3(self, epoch, training):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch, training)

    monkeypatch.setattr(Trainer, "run_epoch", interrupt_in_epoch_3)
    with pytest.raises(Esc50Error, match="interrupted in epoch 3; last.pt holds epoch 2: "
                                         "continue with `esc50 train --resume"):
        Trainer(config.override(run_name="cut"), load_registry(), log=lambda _: None).fit()
    monkeypatch.setattr(Trainer, "run_epoch", original)
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "cut")])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "after epoch 2" in result.output

    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert len(list(csv.DictReader((tmp_path / "cut" / "history.csv").open()))) == 4


def test_resume_of_a_folder_that_is_no_run_says_so(tmp_path):
    (tmp_path / "run").mkdir()
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 1 and "it holds no last.pt, config.toml and split.json" in \
        result.output


def test_a_run_killed_in_its_first_epoch_resumes_from_the_start_in_place(synthetic_data,
                                                                         tmp_path):
    """Killed before its first last.pt was complete, a run folder holds its config and split
    only: --resume (which a restart under the same name advises) trains it from epoch 1 there,
    to the same weights as the run had it not been killed."""
    args = ["train", "--data", str(synthetic_data), "--epochs", "1", "--output-dir", str(tmp_path),
            "--val-fold", "1", *SMALL_FLAGS]
    assert CliRunner().invoke(cli, [*args, "--run-name", "whole"]).exit_code == 0
    assert CliRunner().invoke(cli, [*args, "--run-name", "killed"]).exit_code == 0
    killed = tmp_path / "killed"
    for name in ("last.pt", "last.pt.sha256", "best.pt", "best.pt.sha256", "metrics.json",
                 "history.csv", "curves.png"):
        (killed / name).unlink()
    write_leftover(killed / "last.pt")  # what a write killed midway leaves
    again = CliRunner().invoke(cli, [*args, "--run-name", "killed"])
    assert again.exit_code == 1 and "continue it with --resume" in again.output
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(killed)])
    assert resumed.exit_code == 0, resumed.output
    assert "training it again in place from epoch 1" in resumed.output
    assert not list(killed.glob(".*.tmp"))
    whole, done = (load_checkpoint(tmp_path / n / "last.pt")["model"] for n in ("whole", "killed"))
    assert all(torch.equal(whole[k], done[k]) for k in whole)


def test_features_are_cached_without_waveform_augmentation(synthetic_data, tmp_path):
    def run(name, **changes):
        config = small_config(synthetic_data, output_dir=str(tmp_path), run_name=name,
                              augs=["specaugment", "mixup"], **changes)
        trainer = Trainer(config, load_registry(), log=lambda _: None)
        return trainer, load_checkpoint(trainer.fit() / "last.pt")

    cached, with_cache = run("cached")
    plain, without_cache = run("plain", cache_features=False)
    assert cached.data.cache is not None and plain.data.cache is None
    assert cached.data.cache[0].shape == (24, 1, 32, 126)
    assert set(next(iter(cached.data.train_loader))) == {"label", "index"}  # no waveforms
    # Without the cache, waveform batches are gathered by index from the decoded audio where
    # the model trains (on a GPU: copied there once), not collated on the host every step.
    assert set(next(iter(plain.data.train_loader))) == {"label", "index"}
    assert plain.data.device_audio[0] is plain.data.train_set.cache.waves
    for a, b in zip(with_cache["history"], without_cache["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_accuracy"] == b["val_accuracy"]
    noisy = Trainer(small_config(synthetic_data, augs=["noise"]), load_registry(),
                    log=lambda _: None)
    assert noisy.data.cache is None  # a waveform augmentation needs featurizing each epoch


def test_skip_bad_files_trains_on_the_rest(synthetic_data, tmp_path):
    bad = sorted(synthetic_data.glob("2-*"))[0]
    bad.write_bytes(b"RIFF0000WAVEtruncated")
    base = ["train", "--data", str(synthetic_data), "--output-dir", str(tmp_path), "--epochs", "1",
            "--val-fold", "1", "--no-progress", "--set", "num_classes=4", "--set",
            "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS]
    stopped = CliRunner().invoke(cli, base + ["--run-name", "stop"])
    assert stopped.exit_code == 1 and stopped.output.count("\n") == 1, stopped.output
    assert f"Error: {bad}: cannot decode audio" in stopped.output
    assert not (tmp_path / "stop").exists()
    skipped = CliRunner().invoke(cli, base + ["--run-name", "skip", "--skip-bad-files"])
    assert skipped.exit_code == 0, skipped.output
    assert f"warning: skipped {bad}: cannot decode audio" in skipped.output
    metrics = json.loads((tmp_path / "skip" / "metrics.json").read_text())
    assert metrics["train_clips"] == 15 and metrics["val_clips"] == 8


def test_an_unusable_output_folder_is_a_one_line_error(synthetic_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = small_config(synthetic_data, output_dir=str(blocker / "runs"), run_name="r")
    with pytest.raises(Esc50Error, match=f"cannot create --output-dir {blocker}/runs: "
                                         "Not a directory"):
        Trainer(config, load_registry(), log=lambda _: None).fit()


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    """A real `kill -9` of a training process: the run resumes from last.pt and ends where an
    uninterrupted run with the same seed ends."""
    data = write_synthetic_dataset(tmp_path / "data")
    args = [sys.executable, "-m", "esc50", "train", "--data", str(data), "--output-dir",
            str(tmp_path), "--epochs", "12", "--val-fold", "1", "--no-progress", "--aug", "noise",
            "--set", "num_classes=4", "--set", "sample_rate=8000", "--set", "length_wav=8000",
            *STFT_FLAGS, "--batch-size", "8"]
    victim = subprocess.Popen([*args, "--run-name", "killed"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    history = tmp_path / "killed" / "history.csv"
    while victim.poll() is None:  # waits on progress, however slow the machine is
        if history.is_file() and len(history.read_text().splitlines()) > 3:  # 3 epochs done
            break
        time.sleep(0.01)
    victim.kill()  # SIGKILL: no handler runs, no checkpoint is written on the way out
    victim.wait()
    killed_at = len(load_checkpoint(tmp_path / "killed" / "last.pt")["history"])
    assert 3 <= killed_at < 12, "the run ended before it could be killed"
    resumed = subprocess.run([sys.executable, "-m", "esc50", "train", "--resume",
                              str(tmp_path / "killed"), "--no-progress"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {killed_at}" in resumed.stdout
    straight = subprocess.run([*args, "--run-name", "straight"], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_label_smoothing_keeps_the_training_loss_above_its_floor(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=4)

    def final_train_loss(name, **changes):
        config = small_config(data, num_epochs=12, output_dir=str(tmp_path), run_name=name,
                              **changes)
        run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
        return load_checkpoint(run_dir / "last.pt")["history"][-1]

    plain, smoothed = final_train_loss("plain"), final_train_loss("smooth", label_smoothing=0.2)
    # Smoothed targets (0.85, 0.05, 0.05, 0.05) have entropy 0.587: no model gets below it.
    floor = -(0.85 * math.log(0.85) + 3 * 0.05 * math.log(0.05))
    assert plain["train_loss"] < 0.2 and plain["val_accuracy"] >= 0.85
    assert floor <= smoothed["train_loss"] < floor + 0.2 and smoothed["val_accuracy"] >= 0.85
    assert smoothed["val_loss"] < 0.5  # validation loss is the plain cross-entropy


def test_weight_averaging_is_what_validation_and_best_pt_use(synthetic_data, tmp_path):
    from esc50.core.training.classifier import load_classifier

    config = small_config(synthetic_data, num_epochs=1, output_dir=str(tmp_path), run_name="ema",
                          ema_decay=0.5, batch_size=4)  # 4 steps: the average lags the weights
    trainer = Trainer(config, load_registry(), log=lambda _: None)
    run_dir = trainer.fit()  # one epoch: it is the best, so best.pt holds its validated weights
    averaged = trainer.state.average.module.state_dict()
    raw = trainer.state.model.state_dict()
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw)
    best = load_checkpoint(run_dir / "best.pt")
    assert all(torch.equal(best["model"][k], averaged[k]) for k in averaged)
    classifier, _ = load_classifier(run_dir / "last.pt", load_registry())
    assert all(torch.equal(classifier.model.state_dict()[k], averaged[k]) for k in averaged)


def test_warm_up_then_cosine():
    from esc50.core.training.schedule import lr_factor

    factors = [lr_factor(step, warmup_steps=4, total_steps=20, cosine=True) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[12] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert lr_factor(20, 4, 20, cosine=True) == pytest.approx(0.0)
    assert lr_factor(15, 4, 20, cosine=False) == 1.0


def test_the_strong_recipe_is_a_readable_config_whose_plugins_all_build(synthetic_data, tmp_path):
    from esc50.core.config import recipe_path

    config = load_config(recipe_path("strong"))
    assert (config.model, config.options["plugins.logmel"]["n_mels"], config.label_smoothing) \
        == ("plugins.kumar", 128, 0.1)
    assert config.ema_decay > 0 and config.warmup_epochs > 0 and len(config.augs) >= 5
    registry = load_registry()
    for spec in config.augs:  # every augmentation and option in it is valid
        registry.create("augmentation", spec, config)
    result = CliRunner().invoke(cli, [
        "train", "--recipe", "strong", "--model", "plugins.crnn", "--data", str(synthetic_data),
        "--epochs", "1", "--set", "warmup_epochs=1", "--val-fold", "1", "--output-dir",
        str(tmp_path), "--run-name", "strong", "--no-progress", "--batch-size", "8",
        "--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
        "--set", "num_classes=4"])
    assert result.exit_code == 0, result.output
    used = load_config(tmp_path / "strong" / "config.toml")
    assert used.augs == config.augs and used.ema_decay == config.ema_decay
    assert used.model == "plugins.crnn"  # flags override the recipe
    assert used.options["plugins.logmel"]["n_mels"] == 32  # typed, as a config file gives it
    unknown = CliRunner().invoke(cli, ["train", "--recipe", "fast"])
    assert unknown.exit_code == 1
    assert "unknown recipe 'fast' (recipes: ast-finetune, ast-probe, cnn14-finetune, " \
           "cnn14-probe, gpu, kumar-finetune, kumar-probe, laptop, quick, report, strong)" in \
        unknown.output


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.parametrize("recipe, epochs, learns", [("quick", 8, True), ("laptop", 2, False)])
def test_the_cpu_recipes_train_with_their_own_network(recipe, epochs, learns, tmp_path):
    """The CPU recipes as written (their network, features, augmentations, schedule, moving
    average), on the synthetic four-tone task at its sample rate and length. The quick recipe
    learns it in 8 epochs; the laptop recipe's mixup and masks are built for 1600 clips and 80
    epochs, not for 32 clips (its accuracy is measured on ESC-50: docs/results.md)."""
    from esc50.core.config import recipe_path

    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=4)
    result = CliRunner().invoke(cli, [
        "train", "--recipe", recipe, "--data", str(data), "--epochs", str(epochs), "--val-fold",
        "1",
        "--output-dir", str(tmp_path), "--run-name", recipe, "--no-progress", "--batch-size",
        "16", "--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
        "--set", "warmup_epochs=1", "--set", "num_classes=4"])
    assert result.exit_code == 0, result.output
    written = load_config(recipe_path(recipe))
    used = load_config(tmp_path / recipe / "config.toml")
    assert (used.model, used.augs, used.ema_decay) == ("plugins.rescnn", written.augs,
                                                       written.ema_decay)
    metrics = json.loads((tmp_path / recipe / "metrics.json").read_text())
    assert metrics["epochs"] == epochs and metrics["train_clips"] == 32
    if learns:
        assert metrics["final_val_accuracy"] >= 0.75  # chance is 0.25


def test_the_moving_average_forgets_the_initial_weights_in_a_short_run():
    from esc50.core.training.averaging import MovingAverage

    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    average = MovingAverage(model, decay=0.999)
    average.update_parameters(model)  # the first update copies: 0
    torch.nn.init.ones_(model.weight)
    for _ in range(99):  # 99 steps towards 1, as in a 10-epoch run of 10 steps
        average.update_parameters(model)
    assert float(average.module.weight) > 0.99  # a fixed 0.999 would be at 1 - 0.999**99 = 0.09


def test_the_moving_average_is_torchs_averaged_model_with_the_ramped_decay():
    """The same numbers as torch's AveragedModel given the ramped decay as its average function
    (weights and batch-norm buffers, counters included), and each loads the other's state."""
    from torch.optim.swa_utils import AveragedModel

    from esc50.core.training.averaging import MovingAverage

    def ramped(averaged, current, num_averaged, decay=0.9):
        rate = min(decay, (1.0 + float(num_averaged)) / (10.0 + float(num_averaged)))
        return averaged * rate + current * (1.0 - rate)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.LazyLinear(3))
    model(torch.randn(2, 1, 6, 6))
    ours, torchs = MovingAverage(model, 0.9), AveragedModel(model, avg_fn=ramped,
                                                            use_buffers=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(30):
        model(torch.randn(8, 1, 6, 6)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        ours.update_parameters(model)
        torchs.update_parameters(model)
    expected = torchs.state_dict()
    assert ours.state_dict().keys() == expected.keys()
    for key, value in ours.state_dict().items():
        assert torch.allclose(value.double(), expected[key].double(), atol=1e-6), key
    assert not torch.allclose(ours.module[0].weight, model[0].weight)  # it lags the weights
    loaded = MovingAverage(model, 0.9)
    loaded.load_state_dict(expected)
    assert int(loaded.n_averaged) == 30 and loaded.rate() == pytest.approx(31 / 40)


def test_each_batch_carries_its_own_record_and_replays_to_itself(synthetic_data, tmp_path):
    """Prepared one step ahead (as on a GPU; here on the CPU) or one by one, the batches are the
    same, each says where it is (not where the preparation has got to), and preparing one again
    from its record, with the draws it was prepared with, gives it again."""
    config = small_config(synthetic_data, output_dir=str(tmp_path), batch_size=4,
                          augs=["noise", "time_stretch", "specaugment", "mixup"])

    def batches(ahead):
        trainer = Trainer(config, load_registry(), log=lambda _: None)
        return trainer, list(trainer.data.batches(trainer.randomness, epoch=3, ahead=ahead))

    _, one_by_one = batches(False)
    trainer, ahead = batches(True)
    assert len(one_by_one) == len(ahead) > 1
    for step, (a, b) in enumerate(zip(one_by_one, ahead), start=1):
        assert all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors()))
        assert a.record.where == b.record.where == f" at epoch 3, step {step}"
    for batch in ahead:
        features, frames = trainer.data.replay(batch.record, trainer.randomness)
        assert torch.equal(features, batch.features) and torch.equal(frames, batch.frames)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="batches are prepared ahead on a GPU "
                    "only (checked on an H200: docs/performance.md)")
def test_batches_prepared_ahead_on_a_second_stream_are_the_ones_prepared_one_by_one(
        synthetic_data, tmp_path):
    config = small_config(synthetic_data, device="cuda", output_dir=str(tmp_path),
                          augs=["noise", "time_stretch", "pitch_shift", "specaugment", "mixup"])

    def batches(ahead):
        trainer = Trainer(config, load_registry(), log=lambda _: None)
        return [tuple(t.clone() for t in batch.tensors())
                for batch in trainer.data.batches(trainer.randomness, ahead=ahead)]

    one_by_one, ahead = batches(False), batches(True)
    assert len(one_by_one) == len(ahead) > 1
    assert all(torch.equal(x, y) for a, b in zip(one_by_one, ahead) for x, y in zip(a, b))
