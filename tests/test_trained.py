"""Trained models shipped by name: a run trained on every clip (``split="all"``), packaged with
``esc50 package`` (float16 where it changes no prediction, licence, card, record), registered
through ``register_trained_models``, loaded by name and refused when its file was tampered
with; and the model esc50 itself ships, on real ESC-50 clips."""

from __future__ import annotations

import hashlib
import json
import types
from pathlib import Path

import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

import esc50
from esc50 import Esc50Error, hookimpl
from esc50.cli.main import cli
from esc50.core.plugin_api.registry import load_registry
from esc50.plugins.models.rescnn import TRAINED, trained_models
from tests.conftest import FREQS, SR, STFT_FLAGS, tone, write_synthetic_dataset

TINY = ["--model", "plugins.rescnn", "--set", "plugins.rescnn.widths=[8, 16, 32, 64]",
        "--set", "sample_rate=8000", *STFT_FLAGS, "--epochs", "6", "--lr", "0.01",
        "--batch-size", "8", "--no-progress"]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """A tiny model trained on every clip of a tone dataset, its 3-fold cross-validation, and
    the package ``esc50 package`` made of them: (data, runs folder, package folder, output)."""
    root = tmp_path_factory.mktemp("trained")
    data = write_synthetic_dataset(root / "data", clips_per_class_per_fold=3)
    runs = root / "runs"
    common = ["--data", str(data), "--output-dir", str(runs), *TINY]
    trained = CliRunner().invoke(cli, ["train", *common, "--split", "all", "--run-name", "all"])
    assert trained.exit_code == 0, trained.output
    crossed = CliRunner().invoke(cli, ["cv", *common, "--name", "cv"])
    assert crossed.exit_code == 0, crossed.output
    result = CliRunner().invoke(cli, ["package", str(runs / "all"), "--name", "tones",
                                      "--out", str(root / "tones"), "--cv", str(runs / "cv")])
    assert result.exit_code == 0, result.output
    return data, runs, root / "tones", result.output


def registry_with(name: str, path: Path, checksum: str):
    @hookimpl(specname="register_trained_models")
    def hook(register):
        register(name, path, checksum, "tones at four pitches", "CC0 (generated tones)")

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="t", register_trained_models=hook),
                             "tones")
    return registry


def test_a_run_on_every_clip_holds_none_out_and_says_so(packaged):
    _, runs, _, _ = packaged
    metrics = json.loads((runs / "all" / "metrics.json").read_text())
    assert metrics["final_val_accuracy"] is None and metrics["selected_on_validation"] is None
    assert metrics["train_clips"] == 36 and metrics["val_clips"] == 0
    assert not (runs / "all" / "best.pt").exists()  # no epoch was chosen on anything
    assert "none of its own: every clip trained the model" in \
        (runs / "all" / "MODEL_CARD.md").read_text()
    run = esc50.Run.open(runs / "all")
    assert run.accuracy is None and "nothing held out" in repr(run)
    refused = CliRunner().invoke(cli, ["evaluate", str(runs / "all")])
    assert refused.exit_code == 1 and "no validation clips of its own" in refused.output


def test_hook_register_trained_models(packaged, tmp_path):
    data, _, folder, output = packaged
    model_file = folder / "model.pt"
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert f'"sha256:{digest}"' in output  # what to register
    registry = registry_with("tones", model_file, f"sha256:{digest}")
    model = esc50.load("tones", registry=registry)
    assert model.trained.name == "tones" and model.class_names == ["0", "1", "2", "3"]
    for target, freq in enumerate(FREQS):  # the training clips: the weights are real
        assert model.predict(tone(freq * 1.01, seed=99), sample_rate=SR)[0][0] == str(target)
    evaluated = model.evaluate(data, fold=1, training_clips=True)
    assert evaluated["training_clips"] and evaluated["accuracy"] > 0.5
    with pytest.raises(Esc50Error, match="fold 1: 12 of its 12 clips .* were used to train"):
        model.evaluate(data, fold=1)
    exported, _ = model.export("torchscript", tmp_path / "tones.pt")
    assert exported.is_file()
    tampered = tmp_path / "model.pt"
    body = bytearray(model_file.read_bytes())
    body[-100] ^= 1
    tampered.write_bytes(bytes(body))
    with pytest.raises(Esc50Error, match=r"trained model tones: .*model.pt does not match the "
                                         r"sha256 its package registers .* refusing to load it"):
        esc50.load("tones", registry=registry_with("tones", tampered, f"sha256:{digest}"))
    with pytest.raises(Esc50Error, match=r"nope: no such run folder or checkpoint, and no "
                                         r"trained model of that name \(trained models: .*tones"):
        esc50.load("nope", registry=registry)
    with pytest.raises(Esc50Error, match=r"tnoes: no such run folder or checkpoint, and no "
                                         r"trained model of that name \(did you mean tones\? "):
        esc50.load("tnoes", registry=registry)  # a typo gets the close name


def test_a_package_holds_its_weights_in_half_precision_with_licence_card_and_record(packaged):
    data, runs, folder, output = packaged
    state = torch.load(folder / "model.pt", weights_only=True)
    assert {t.dtype for t in state["model"].values() if t.is_floating_point()} == {torch.float16}
    assert "optimizer" not in state and "ema" not in state
    assert "float16" in output
    card = (folder / "MODEL_CARD.md").read_text()
    summary = json.loads((runs / "cv" / "cv.json").read_text())
    assert f"**{summary['mean_accuracy']:.1%} +- {summary['std_accuracy']:.1%}**" in card
    assert "float16 changes the predicted class of 0 of the 36 training clips" in card
    assert "Outside its classes it still answers one of them" in card
    record = folder / "record"
    assert sorted(p.name for p in record.iterdir()) == ["clips.txt", "config.toml",
                                                        "history.csv", "metrics.json"]
    assert len((record / "clips.txt").read_text().split()) == 36
    assert "learned from" in (folder / "LICENSE").read_text()
    again = CliRunner().invoke(cli, ["train", "--config", str(record / "config.toml"), "--data",
                                     str(data), "--output-dir", str(runs), "--run-name", "again",
                                     "--epochs", "1"])
    assert again.exit_code == 0, again.output  # the record trains the model again


def test_the_shipped_model_is_listed_and_refused_when_tampered(tmp_path):
    registry = load_registry()
    [name] = trained_models()
    shipped = registry.trained[name]
    assert "non-commercial" in shipped.licence
    listed = json.loads(CliRunner().invoke(cli, ["weights", "list", "--json"]).output)
    assert [r["name"] for r in listed if r["kind"] == "trained model"] == [name]
    plugins = CliRunner().invoke(cli, ["list-plugins"])
    assert f"  {name}: " in plugins.output and "non-commercial" in plugins.output
    assert shipped.path.stat().st_size <= 10 * 2**20
    copy = tmp_path / "model.pt"
    body = bytearray(shipped.path.read_bytes())
    body[len(body) // 2] ^= 0xFF
    copy.write_bytes(bytes(body))
    with pytest.raises(Esc50Error, match="does not match the sha256 its package registers"):
        esc50.load(name + "-copy", registry=registry_with(name + "-copy", copy, shipped.checksum))


def test_the_shipped_model_labels_esc50_clips_by_name(real_data):
    """Clips of its own training set (all 2000 clips trained it): this shows that the weights
    are real and load, not how well it does on new sounds (its card's cross-validation does)."""
    [name] = trained_models()
    clips = sorted((real_data / "audio").glob("1-*"))[:12]
    result = CliRunner().invoke(cli, ["predict", name, *map(str, clips), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    names = esc50.load(name).class_names
    right = [row["top"][0]["class"] == names[int(Path(row["file"]).stem.split("-")[-1])]
             for row in rows]
    assert sum(right) >= 11, rows
    assert "non-commercial" in result.stderr
    samples, rate = sf.read(clips[0], dtype="float32")
    timeline = esc50.load(name).timeline(samples, sample_rate=rate)
    assert timeline.segments and TRAINED.is_file()
