"""`esc50 export`: the exported ONNX and TorchScript files give the probabilities `esc50
predict` gives, on real and generated clips, for every built-in model that is exported here."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.data.audio import load_clip
from esc50.core.training.classifier import Classifier, build_classifier
from esc50.core.errors import Esc50Error
from esc50.core.commands.export import Probabilities, export_classifier
from esc50.core.plugins.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import FREQS, SR, small_config, tone, write_synthetic_dataset

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CRNN trained on the tone task (4 classes, 1 s at 8 kHz)."""
    tmp = tmp_path_factory.mktemp("export")
    data = write_synthetic_dataset(tmp / "data", clips_per_class_per_fold=4)
    config = small_config(data, num_epochs=6, output_dir=str(tmp / "runs"), run_name="tones")
    return Trainer(config, load_registry(), log=lambda _: None).fit()


def run_exported(path, fmt, wav: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path))
        return session.run(None, {"wav": wav})[0]
    with torch.no_grad():
        return torch.jit.load(str(path))(torch.from_numpy(wav)).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_file_gives_the_probabilities_predict_gives(trained, tmp_path, fmt, real_data):
    out = tmp_path / f"tones.{fmt}"
    result = CliRunner().invoke(cli, ["export", str(trained), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    side = json.loads(out.with_suffix(out.suffix + ".json").read_text())
    assert side["class_names"] == ["0", "1", "2", "3"]
    assert side["sample_rate"] == SR and side["clip_samples"] == SR
    # Real ESC-50 clips (1 s of each at the run's rate) and tones, as files for predict.
    clips = [load_clip(p, SR, SR)[0].numpy() for p in sorted(real_data.glob("*.ogg"))[:4]]
    clips += [tone(f, seed=7) for f in FREQS]
    for i, clip in enumerate(clips):
        sf.write(tmp_path / f"clip{i}.wav", clip, SR, subtype="FLOAT")
    predicted = json.loads(CliRunner().invoke(
        cli, ["predict", str(trained), str(tmp_path), "--json", "--top-k", "4"]).stdout)
    exported = run_exported(out, fmt, np.stack(clips).astype(np.float32))
    assert exported.shape == (len(clips), 4)
    for row in predicted:
        i = int(row["file"].split("clip")[-1].split(".")[0])
        for entry in row["top"]:
            assert exported[i, int(entry["class"])] == pytest.approx(entry["probability"],
                                                                     abs=1e-4)
    assert [int(np.argmax(p)) for p in exported[-4:]] == [0, 1, 2, 3]  # the tones


@pytest.mark.parametrize("name", ["baseline", "advanced", "lstm", "crnn", "kumar"])
def test_every_built_in_model_exports_to_both_formats(name, tmp_path):
    """The same probabilities as the model in torch, within 1e-4, for a batch size other than
    the one exported with (the batch axis is dynamic). VGG19 is left out here (its file is
    560 MB); the baseline's adaptive max pooling has no ONNX operator, so it exports to
    TorchScript only and ONNX says so in one line."""
    from tests.test_models import CONFIG

    registry = load_registry()
    torch.manual_seed(0)
    config = CONFIG.override(model=f"plugins.{name}")
    classifier = build_classifier(config, registry)
    wav = 0.3 * torch.randn(3, config.length_wav, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = Probabilities(classifier)(wav).numpy()
    for fmt in ("torchscript",) if name == "baseline" else ("onnx", "torchscript"):
        path = tmp_path / f"{name}.{fmt}"
        export_classifier(classifier, fmt, path, config.length_wav, f"plugins.{name}")
        np.testing.assert_allclose(run_exported(path, fmt, wav.numpy()), expected, atol=1e-4)
    if name == "baseline":
        with pytest.raises(Esc50Error, match="^plugins.baseline cannot be exported to onnx: "):
            export_classifier(classifier, "onnx", tmp_path / "b.onnx", config.length_wav,
                              "plugins.baseline")


def test_a_model_that_cannot_be_exported_gets_a_one_line_reason(tmp_path):
    class BranchesOnValues(torch.nn.Module):  # control flow that depends on the audio
        def forward(self, features, frame_lengths):
            scores = features.mean(dim=(1, 2))[:, :4]
            return scores if bool(scores.sum() > 0) else -scores

    featurizer = load_registry().create("featurizer", "plugins.logmel", small_config(tmp_path))
    classifier = Classifier(featurizer, BranchesOnValues())
    with pytest.raises(Esc50Error, match=r"^acme\.branchy cannot be exported to onnx: \w+") as err:
        export_classifier(classifier, "onnx", tmp_path / "x.onnx", SR, "acme.branchy")
    assert "\n" not in str(err.value) and not (tmp_path / "x.onnx").exists()
