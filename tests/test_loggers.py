"""Loggers, the fifth kind of plugin: the events a logger receives through the real trainer, a
logger that raises (reported once, disabled, the run unharmed), the history.csv logger every run
has, and TensorBoard's event files read back with TensorBoard's own reader."""

from __future__ import annotations

import csv
import json
import types

import pytest
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.hookspecs import hookimpl
from esc50.core.results.metrics import WORST_SHOWN as EXAMPLES
from esc50.core.plugin_api.contracts import Logger
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import STFT_FLAGS, small_config, write_synthetic_dataset


class Recorder(Logger):
    """Keeps every event it is given."""

    name = "recorder"
    events: list[tuple] = []

    def __init__(self, config) -> None:
        Recorder.events = []

    def start(self, run):
        self.events.append(("start", run.run_dir, list(run.class_names), len(run.history)))

    def step(self, step, values):
        self.events.append(("step", step, values))

    def epoch(self, row):
        self.events.append(("epoch", dict(row)))

    def figure(self, name, figure, epoch):
        self.events.append(("figure", name, epoch))

    def audio(self, name, wav, sample_rate, caption):
        self.events.append(("audio", name, len(wav), sample_rate, caption))

    def end(self, metrics):
        self.events.append(("end", metrics))


class Broken(Logger):
    """Raises on the first epoch it is told about."""

    name = "broken"

    def __init__(self, config) -> None:
        pass

    def epoch(self, row):
        raise RuntimeError("the logging service is down")


def registry_with_loggers():
    @hookimpl(specname="register_loggers")
    def hook(register):
        register(Recorder)
        register(Broken)

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="tests", register_loggers=hook),
                             "mine")
    return registry


def test_hook_register_loggers(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=3)
    config = small_config(data, output_dir=str(tmp_path / "runs"), run_name="r", num_epochs=2,
                          batch_size=4, loggers=["mine.broken", "mine.recorder"])
    lines = []
    trainer = Trainer(config, registry_with_loggers(), log=lines.append)
    run_dir = trainer.fit()
    events = Recorder.events
    assert events[0] == ("start", run_dir, ["0", "1", "2", "3"], 0)
    steps = [e for e in events if e[0] == "step"]
    assert [s[1] for s in steps] == [6, 12]  # every SYNC_EVERY (20) steps and at an epoch's end
    with (run_dir / "history.csv").open() as handle:
        written = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    # at an epoch's end the running loss is the epoch's; lr: cosine, halfway then at zero
    assert [s[2]["train_loss"] for s in steps] == pytest.approx(
        [row["train_loss"] for row in written])
    assert [s[2]["lr"] for s in steps] == pytest.approx([0.5 * 3e-3, 0.0])
    assert [e[1] for e in events if e[0] == "epoch"] == written == trainer.state.history
    assert [e[1:] for e in events if e[0] == "figure"] == [
        ("learning_curves", 1), ("learning_curves", 2), ("confusion_matrix", 2)]
    audio = [e for e in events if e[0] == "audio"]
    assert len(audio) == EXAMPLES and all(a[2] == 8000 and a[3] == 8000 for a in audio)
    assert all(a[1].startswith("worst_classified/") and " predicted " in a[4] for a in audio)
    assert events[-1][0] == "end"
    assert events[-1][1]["final_val_accuracy"] == written[-1]["val_accuracy"]
    failures = [line for line in lines if "logger mine.broken" in line]
    assert failures == ["warning: logger mine.broken failed on epoch (RuntimeError: the logging "
                        "service is down); it is disabled for the rest of this run"]


def test_an_unknown_logger_fails_before_the_run_makes_its_folder(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data")
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--val-fold", "1",
                                      "--output-dir", str(tmp_path / "runs"), "--no-progress",
                                      "--logger", "tensorbord", *STFT_FLAGS])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "unknown logger 'tensorbord'; did you mean plugins.tensorboard" in result.output
    assert not (tmp_path / "runs").exists()


def test_tensorboard_event_files_hold_the_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=3)
    result = CliRunner().invoke(cli, [
        "train", "--data", str(data), "--val-fold", "1", "--epochs", "2", "--batch-size", "4",
        "--output-dir", str(tmp_path), "--run-name", "tb", "--no-progress", "--logger",
        "tensorboard", "--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS])
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"),
                              size_guidance={"audio": 0, "images": 0}).Reload()
    with (tmp_path / "tb" / "history.csv").open() as handle:
        history = list(csv.DictReader(handle))
    accuracy = [e.value for e in events.Scalars("epoch/val_accuracy")]
    assert accuracy == pytest.approx([float(row["val_accuracy"]) for row in history])
    assert [e.step for e in events.Scalars("step/train_loss")] == [6, 12]
    assert len(events.Images("confusion_matrix")) == 1
    clips = [tag for tag in events.Tags()["audio"] if tag.startswith("worst_classified/")]
    assert len(clips) == EXAMPLES and all(events.Audio(tag)[0].length_frames == 8000
                                          for tag in clips)
    metrics = json.loads((tmp_path / "tb" / "metrics.json").read_text())
    assert str(metrics["final_val_accuracy"])[:5] in events.Tensors("metrics/text_summary")[0] \
        .tensor_proto.string_val[0].decode()


def test_tensorboard_missing_is_a_one_line_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(Esc50Error, match=r"plugins.tensorboard needs the tensorboard package: "
                                         r"pip install 'esc50\[tensorboard\]'"):
        load_registry().create("logger", "plugins.tensorboard", small_config("."))


def test_a_run_loads_predicts_evaluates_and_exports_without_its_loggers_and_augmentations(
        tmp_path):
    """Loggers and augmentations are needed only to train: a run trained with ones from a
    package that is gone (here: registered at run time only) loads everywhere its model and
    featurizer are installed."""
    from esc50 import Augmentation
    from esc50.commands import api

    class Gain(Augmentation):
        name = "gain"

        def __init__(self, config, p: float = 1.0) -> None:
            super().__init__(p)

        def sample(self, batch_size, generator):
            return {}

        def apply(self, wav, chosen, params, generator):
            return wav * 0.9

    @hookimpl(specname="register_augmentations")
    def augs(register):
        register(Gain)

    registry = registry_with_loggers()
    registry.register_plugin(types.SimpleNamespace(__name__="tests2", register_augmentations=augs),
                             "extra")
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=3)
    config = small_config(data, output_dir=str(tmp_path / "runs"), run_name="r", num_epochs=1,
                          batch_size=4, loggers=["mine.recorder"], augs=["extra.gain:p=1"])
    run_dir = Trainer(config, registry, log=lambda _: None).fit()
    model = api.load(run_dir)  # the installed plugins: no mine.recorder, no extra.gain
    assert len(model.predict(str(data / "1-1000-A-0.wav"))) == 3
    assert model.evaluate()["clips"] == 12
    assert model.export("torchscript", tmp_path / "m.pt")[0].is_file()


def test_a_logger_interrupted_by_ctrl_c_ends_the_run_saying_how_to_resume_it(tmp_path):
    class Interrupted(Recorder):
        name = "interrupted"

        def epoch(self, row):
            raise KeyboardInterrupt

    @hookimpl(specname="register_loggers")
    def hook(register):
        register(Interrupted)

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="t3", register_loggers=hook), "stop")
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=3)
    config = small_config(data, output_dir=str(tmp_path / "runs"), run_name="r", num_epochs=3,
                          batch_size=4, loggers=["stop.interrupted"])
    with pytest.raises(Esc50Error, match=r"^interrupted after epoch 1; last.pt holds the last "
                       r"epoch saved: continue with `esc50 train --resume .*runs/r`$"):
        Trainer(config, registry, log=lambda _: None).fit()
    assert (tmp_path / "runs" / "r" / "last.pt").is_file()
