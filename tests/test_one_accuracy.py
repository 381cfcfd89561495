"""One run, one accuracy: what `train` prints and writes to metrics.json, what `evaluate`,
`report`, `cv.json` and the Python API say for that run on the same clips, are the same number,
to the clip, with the settings the CPU recipes use (bf16 autocast where the CPU has it); and with
bf16 autocast forced on (emulated where the CPU lacks the instructions), `evaluate` scores in
bf16 as the run did and gives its figure."""

import json
import os
import re

from click.testing import CliRunner

import esc50
from esc50.cli.main import cli
from esc50.core.training import device
from tests.conftest import ESC10_QUICK


def test_train_metrics_evaluate_report_cv_and_api_agree_to_the_clip(esc10_cv, tmp_path):
    """A cross-validation fold trained with the quick recipe's settings on real clips."""
    root, printed = esc10_cv
    run_dir = root / "fold-1"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    checkpoint = esc50.load(run_dir)
    assert checkpoint.state["scoring"] == {"batch": 64, "bf16": device.cpu_has_bf16()}
    accuracy = metrics["final_val_accuracy"]
    assert 0.2 < accuracy < 1.0, "the task is meant to leave room for disagreement"
    clips = metrics["val_clips"]
    assert clips == 80 and round(accuracy * clips) == accuracy * clips

    assert re.search(r"fold 1: accuracy (\d\.\d+)", printed).group(1) == f"{accuracy:.3f}"
    assert json.loads((root / "cv.json").read_text())["folds"]["1"] == accuracy
    evaluated = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["accuracy"] == accuracy
    assert esc50.Run.open(run_dir).accuracy == accuracy
    assert checkpoint.evaluate()["accuracy"] == accuracy
    history = (run_dir / "history.csv").read_text().splitlines()
    assert float(history[-1].split(",")[4]) == accuracy
    report = CliRunner().invoke(cli, ["report", str(run_dir), "--out", str(tmp_path / "r"),
                                      "--html"])
    assert report.exit_code == 0, report.output
    assert f"{accuracy:.1%}" in report.output  # the table
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"accuracy {accuracy:.1%}" in page  # above the confusion matrix
    card = (run_dir / "MODEL_CARD.md").read_text()  # the model card says the same figure
    assert f"**Accuracy on the validation clips**: {accuracy:.1%}" in card
    link = os.path.relpath(run_dir / "MODEL_CARD.md", tmp_path / "r")
    assert f'<a href="{link}">Model card</a>' in page


def test_every_run_and_cross_validation_has_a_model_card(esc10_cv):
    root, printed = esc10_cv
    card = (root / "fold-1" / "MODEL_CARD.md").read_text()
    metrics = json.loads((root / "fold-1" / "metrics.json").read_text())
    assert "**Licence of the data**: CC BY 3.0 (the ESC-10 subset of ESC-50" in card
    assert "check what its licence means for using and sharing them" in card
    assert f"{metrics['parameters']:,} parameters" in card
    assert "320 training, 80 validation" in card and "10 classes" in card
    worst = re.search(r"\*\*Worst classes\*\* \(recall\): (.*)\.", card).group(1).split(", ")
    assert len(worst) == 5
    recalls = [int(w.rsplit(" ", 1)[1].rstrip("%")) for w in worst]
    assert recalls == sorted(recalls)
    assert "8 epochs on cpu" in card and "Not for safety-critical use" in card
    assert "Trained on 5-second clips of 10 classes at 16000 Hz" in card
    assert f"esc50 train --config {root / 'fold-1' / 'config.toml'}" in card
    summary = (root / "MODEL_CARD.md").read_text()
    assert f"**Accuracy**: {metrics['final_val_accuracy']:.1%} over 1 folds" in summary
    assert f"next:\n  esc50 predict {root} recording.wav --timeline" in printed
    assert f"model card: {root / 'MODEL_CARD.md'}" in printed


def test_a_run_trained_in_bf16_is_evaluated_in_bf16_to_the_same_figure(real_data, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)  # emulated where not native
    run_dir = tmp_path / "runs" / "bf16"
    result = CliRunner().invoke(cli, ["train", "--data", str(real_data), "--split", "fold",
                                      "--val-fold", "1", "--output-dir", str(run_dir.parent),
                                      "--run-name", "bf16", *ESC10_QUICK, "--epochs", "2",
                                      "--set", "ignore_folds=[3, 4, 5]"])
    assert result.exit_code == 0, result.output
    accuracy = json.loads((run_dir / "metrics.json").read_text())["final_val_accuracy"]
    assert f"final validation accuracy {accuracy:.3f}" in result.output
    assert f"next:\n  esc50 predict {run_dir} recording.wav --timeline" in result.output
    assert esc50.load(run_dir).state["scoring"]["bf16"] is True
    assert 0.0 < accuracy < 1.0
    evaluated = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["accuracy"] == accuracy
