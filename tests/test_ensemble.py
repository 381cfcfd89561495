"""Fold ensembles: a cross-validation folder loads, predicts, labels recordings and exports as
one model (its fold models' probabilities averaged), and is scored only on clips none of its
models trained on."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import esc50
from esc50.cli.main import cli
from tests.conftest import FREQS, SR, STFT_FLAGS, tone, write_synthetic_dataset

SMALL = ["--set", "sample_rate=8000", "--set", "length_wav=8000", *STFT_FLAGS,
         "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    """A cross-validation over folds 2-4 of the tone task with fold 1 left out: three models,
    none of which saw fold 1."""
    tmp = tmp_path_factory.mktemp("ensemble")
    data = write_synthetic_dataset(tmp / "data", clips_per_class_per_fold=3, folds=(1, 2, 3, 4))
    result = CliRunner().invoke(cli, ["cv", "--data", str(data), "--epochs", "4",
                                      "--output-dir", str(tmp / "runs"), "--name", "tones",
                                      "--set", "ignore_folds=[1]", *SMALL])
    assert result.exit_code == 0, result.output
    return data, tmp / "runs" / "tones"


def test_a_cross_validation_folder_predicts_as_the_mean_of_its_models(ensemble, tmp_path):
    data, root = ensemble
    model = esc50.load(root)
    assert model.is_ensemble and len(model.runs) == 3
    assert model.description == f"an ensemble of 3 models ({root})"
    sf.write(tmp_path / "a.wav", tone(FREQS[2], 2.3, seed=3), SR)
    result = CliRunner().invoke(cli, ["predict", str(root), str(tmp_path / "a.wav"), "--json",
                                      "--top-k", "4"])
    assert result.exit_code == 0
    assert f"scoring with an ensemble of 3 models ({root})" in result.stderr
    together = {e["class"]: e["probability"] for e in json.loads(result.stdout)[0]["top"]}
    alone = [dict(esc50.load(root / f"fold-{k}").predict(tmp_path / "a.wav", top_k=4))
             for k in (2, 3, 4)]
    for name, probability in together.items():
        assert probability == pytest.approx(np.mean([a[name] for a in alone]), abs=1e-6)
    timeline = CliRunner().invoke(cli, ["predict", str(root), str(tmp_path / "a.wav"),
                                        "--timeline", "--json"])
    shown = json.loads(timeline.stdout)[0]
    assert shown["models"] == 3 and len(shown["windows"]) == 4
    with pytest.raises(esc50.Esc50Error, match="has one classifier and checkpoint per model"):
        model.state


def test_an_ensemble_is_scored_only_on_clips_none_of_its_models_trained_on(ensemble, tmp_path):
    data, root = ensemble
    report = json.loads(CliRunner().invoke(cli, ["evaluate", str(root), "--fold", "1",
                                                 "--json"]).output)
    assert report["clips"] == 12 and report["selection"] == "fold 1"
    assert [m["run"] for m in report["members"]] == [str(root / f"fold-{k}" / "last.pt")
                                                     for k in (2, 3, 4)]
    for member in report["members"]:
        alone = json.loads(CliRunner().invoke(cli, [
            "evaluate", member["run"], "--fold", "1", "--json"]).output)
        assert alone["accuracy"] == member["accuracy"]
    refused = CliRunner().invoke(cli, ["evaluate", str(root), "--fold", "2"])
    assert refused.exit_code == 1 and refused.output.count("\n") == 1
    assert "fold 2: 12 of its 12 clips (2-" in refused.output
    assert "an ensemble is scored only on clips it never trained on" in refused.output
    refused = CliRunner().invoke(cli, ["evaluate", str(root)])
    assert "an ensemble of 3 models has no validation split of its own: pass --fold N" in \
        refused.output
    # a training clip copied into fold 1 under another name is found by its content
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    trained = sorted(copy.glob("3-*.wav"))[0]
    shutil.copy(trained, copy / "1-99999-A-0.wav")
    refused = CliRunner().invoke(cli, ["evaluate", str(root), "--fold", "1", "--data",
                                       str(copy)])
    assert refused.exit_code == 1 and "1 of its 13 clips (1-99999-A-0.wav)" in refused.output


def test_an_ensemble_exports_as_one_file(ensemble, tmp_path):
    """The file averages its models as the ensemble does (TorchScript here; ONNX takes the same
    module, tests/test_export.py)."""
    import torch

    _, root = ensemble
    result = CliRunner().invoke(cli, ["export", str(root), "--format", "torchscript", "--out",
                                      str(tmp_path / "e.pt")])
    assert result.exit_code == 0 and "an ensemble of 3 models" in result.output
    assert json.loads((tmp_path / "e.pt.json").read_text())["models"] == 3
    audio = np.concatenate([tone(f, 0.9, seed=9) for f in FREQS])
    sf.write(tmp_path / "b.wav", audio, SR, subtype="FLOAT")
    with torch.no_grad():
        windows, _ = torch.jit.load(str(tmp_path / "e.pt"))(torch.from_numpy(audio))
    timeline = esc50.load(root).timeline(tmp_path / "b.wav")
    np.testing.assert_allclose(windows.numpy(), timeline.probabilities, atol=1e-4)


def test_a_cross_validation_writes_a_model_card_for_its_models(ensemble):
    _, root = ensemble
    card = (root / "MODEL_CARD.md").read_text()
    summary = json.loads((root / "cv.json").read_text())
    assert f"**Accuracy**: {summary['mean_accuracy']:.1%} +- {summary['std_accuracy']:.1%}" in card
    assert "over 3 folds" in card and f"esc50 predict {root} FILE" in card
    assert all((root / f"fold-{k}" / "MODEL_CARD.md").is_file() for k in (2, 3, 4))
