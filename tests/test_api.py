"""The Python API: the same runs as the commands, results as objects, errors as Esc50Error, and
the example notebook executed end to end."""

import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pandas
import pytest
import soundfile as sf
from matplotlib.figure import Figure
from click.testing import CliRunner
from nbclient import NotebookClient

import esc50
from esc50.cli.main import cli
from esc50.testing import SMALL_STFT
from tests.conftest import FREQS, REAL_DATA, SR, tone, write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(sample_rate=SR, length_wav=SR, options={"plugins.logmel": SMALL_STFT},
             num_classes=4, batch_size=16, learning_rate=3e-3, progress=False, val_fold=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    data = write_synthetic_dataset(tmp / "data", clips_per_class_per_fold=4)
    return esc50.train(model="plugins.crnn", augs=["noise:min_snr_db=20"], data=str(data),
                       epochs=8, output_dir=str(tmp / "runs"), run_name="tones",
                       log=lambda _: None, **SMALL)


def test_train_returns_the_run_the_command_writes(run):
    assert run.run_dir.name == "tones" and (run.run_dir / "last.pt").is_file()
    assert run.config.num_epochs == 8 and run.config.augs == ["noise:min_snr_db=20"]
    assert len(run.history) == 8 and run.history[-1]["epoch"] == 8
    assert run.accuracy == run.metrics["final_val_accuracy"] == run.history[-1]["val_accuracy"]
    assert run.accuracy >= 0.75  # four tones: chance is 0.25
    frame = run.dataframe()
    assert isinstance(frame, pandas.DataFrame) and list(frame["epoch"]) == list(range(1, 9))
    figure = run.plot()
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    assert esc50.Run.open(run.run_dir) == run


def test_load_predicts_files_folders_and_samples(run, tmp_path):
    model = esc50.load(run.run_dir)
    assert model.class_names == ["0", "1", "2", "3"] and model.sample_rate == SR
    assert model.state["epoch"] == 8  # the final epoch, not the best one
    sf.write(tmp_path / "a.wav", tone(FREQS[2], 2.5, 16000), 16000)
    sf.write(tmp_path / "b.flac", tone(FREQS[0], 0.5, SR), SR)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVE")
    top = model.predict(tmp_path / "a.wav", top_k=2)
    assert [name for name, _ in top][:1] == ["2"] and top[0][1] >= top[1][1]
    folder = {p.path.name: p for p in model.predict(tmp_path)}
    assert folder["b.flac"].top[0][0] == "0" and "cannot decode" in folder["broken.wav"].error
    samples = tone(FREQS[3], 1.0, 22050)
    assert model.predict(samples, sample_rate=22050)[0][0] == "3"
    batch = model.predict(np.stack([tone(FREQS[1], 1.0, SR), tone(FREQS[3], 1.0, SR)]),
                          sample_rate=SR, top_k=1)
    assert [clip[0][0] for clip in batch] == ["1", "3"]


def test_evaluate_and_the_confusion_matrix_match_the_run(run):
    model = run.load()
    report = model.evaluate()
    assert report["accuracy"] == pytest.approx(run.accuracy)
    matrix = model.confusion_matrix()
    assert matrix.shape == (4, 4) and matrix.sum() == report["clips"] == 16
    assert np.trace(matrix) == round(run.accuracy * 16)
    assert isinstance(model.plot_confusion(), Figure)
    assert run.load("best").state["epoch"] == run.metrics["selected_on_validation"]["epoch"]


def test_errors_are_esc50_errors_with_the_commands_messages(run, tmp_path):
    model = esc50.load(run.run_dir)
    with pytest.raises(esc50.Esc50Error, match="needs sample_rate="):
        model.predict(np.zeros(100))
    with pytest.raises(esc50.Esc50Error, match="does not exist"):
        model.predict(tmp_path / "absent.wav")
    with pytest.raises(esc50.Esc50Error, match="unknown model 'plugins.cnn'; did you mean"):
        esc50.train(model="plugins.cnn", data=str(tmp_path), log=lambda _: None)
    with pytest.raises(esc50.Esc50Error, match="config batch_size=0 must be positive"):
        esc50.config(batch_size=0)
    both = CliRunner().invoke(cli, ["train", "--recipe", "strong", "--config",
                                    str(tmp_path / "c.toml")])
    assert both.exit_code == 1 and "a recipe (--recipe) and a config file (--config) both " \
        "give a config: use one" in both.output


def test_arguments_of_the_wrong_kind_are_one_line_naming_them(run, tmp_path):
    model = esc50.load(run.run_dir)
    with pytest.raises(esc50.Esc50Error, match=r"^Model.predict\(audio=array\(\['a.wav', "
                       r"'b.wav'\].*\): expected .*an array of numbers, not of <U5"):
        model.predict(np.array(["a.wav", "b.wav"]))
    with pytest.raises(esc50.Esc50Error, match=r"^train\(log=None\): expected a function"):
        esc50.train(data=str(tmp_path), log=None)
    with pytest.raises(esc50.Esc50Error, match=r"config.toml is a TOML file \(a run's config or "
                       r"metrics\), not a checkpoint: give the run folder"):
        esc50.load(run.run_dir / "config.toml")
    with pytest.raises(esc50.Esc50Error, match=r"^kind='nosuch' must be one of model, "
                       r"augmentation, featurizer"):
        esc50.list_plugins(kind="nosuch")
    data = Path(run.config.data)  # a folder as a Path works where a string does
    again = esc50.train(data=data, epochs=1, output_dir=tmp_path / "runs", run_name="p",
                        log=lambda _: None, **SMALL)
    assert again.config.data == str(data)
    assert model.evaluate(data=data)["accuracy"] == model.evaluate()["accuracy"]
    (tmp_path / "runs" / "p" / "metrics.json").write_text("[1, 2]")
    report = CliRunner().invoke(cli, ["report", str(tmp_path / "runs" / "p"), "--out",
                                      str(tmp_path / "r")])
    assert report.exit_code == 1 and report.output.count("\n") == 1
    assert f"{tmp_path / 'runs' / 'p' / 'metrics.json'} is damaged: it holds a JSON list, not " \
        "the object esc50 writes" in report.output


def test_config_plugins_and_cv(tmp_path):
    config = esc50.config(recipe="report", batch_size=32, **{"plugins.crnn.hidden_size": 16})
    assert config.batch_size == 32 and config.options["plugins.crnn"]["hidden_size"] == 16
    assert esc50.config(model="plugins.vgg19", pretrained=True).model == \
        "plugins.vgg19:pretrained=true"
    models = {p["id"]: p for p in esc50.list_plugins("model")}
    with pytest.warns(DeprecationWarning, match=r"^calling esc50.plugins\(kind\), the built-in "
                      r"plugins' package, to list plugins is deprecated since esc50 0.3 and goes "
                      r"away in esc50 0.5: use esc50.list_plugins\(kind\)$"):
        assert esc50.plugins("model") == esc50.list_plugins("model")
    assert esc50.plugins.models.__name__ == "esc50.plugins.models"  # the built-ins' package
    assert {"name": "hidden_size", "type": "int", "default": 64,
            "doc": "GRU hidden units per direction"} in models["plugins.crnn"]["options"]
    assert {p["kind"] for p in esc50.list_plugins()} == {"model", "augmentation", "featurizer",
                                                         "dataset", "logger"}
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3))
    result = esc50.cv(data=str(data), epochs=1, name="x", output_dir=str(tmp_path / "runs"),
                      log=lambda _: None, **{**SMALL, "val_fold": 5})
    assert list(result.summary["folds"]) == ["1", "2", "3"] and len(result.runs) == 3
    assert result.mean == pytest.approx(np.mean([r.accuracy for r in result.runs]))
    assert list(result.dataframe()["fold"]) == [1, 2, 3]
    assert isinstance(result.plot(), Figure)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_the_example_notebook_runs_end_to_end(tmp_path):
    if not (REAL_DATA / "meta" / "esc50.csv").is_file():
        pytest.skip(f"real ESC-50 clips not found at {REAL_DATA}")
    notebook = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    quick = {"keyword": "1-1*", "split": "random", "sample_rate": 8000, "length_wav": 40000,
             "options": {"plugins.logmel": {"n_fft": 256, "win_length": 256, "hop_length": 128,
                                            "n_mels": 32}},
             "batch_size": 32, "progress": False, "output_dir": str(tmp_path / "runs")}
    os.environ.update(ESC50_NOTEBOOK_DATA=str(REAL_DATA), ESC50_NOTEBOOK_EPOCHS="1",
                      ESC50_NOTEBOOK_SETTINGS=json.dumps(quick))
    try:
        NotebookClient(notebook, timeout=None, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for name in ("DATA", "EPOCHS", "SETTINGS"):
            os.environ.pop(f"ESC50_NOTEBOOK_{name}")
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the learning curves and the confusion matrix
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for o in outputs)
    assert "Run(" in text and "final val accuracy" in text and "accuracy " in text
    assert (tmp_path / "runs").is_dir()
