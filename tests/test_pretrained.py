"""Pre-trained backbones against their reference implementations: each reference network is built
with random weights (PANNs CNN14 from the panns-inference package's model code; Kumar et al.'s
``weak_mxh64_1024`` from its published layer list), saved in the published file format, loaded
through the plugin with strict key matching, and compared output for output; then trained for an
epoch in both modes (fine-tune, linear probe) through the Trainer. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import esc50
from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.state import parameter_groups
from esc50.core.training.trainer import Trainer
from tests.conftest import small_config, write_synthetic_dataset

REGISTRY = load_registry()
PANNS = TaskConfig().override(sample_rate=32000, length_wav=32000, num_classes=4)
KUMAR = TaskConfig().override(sample_rate=44100, length_wav=44100, num_classes=4)


def panns_models() -> types.ModuleType:
    """panns_inference.models, imported without the package's __init__ (which fetches a label
    file from the network)."""
    location = importlib.util.find_spec("panns_inference").submodule_search_locations[0]
    if "panns_inference" not in sys.modules:
        package = types.ModuleType("panns_inference")
        package.__path__ = [location]
        sys.modules["panns_inference"] = package
    return importlib.import_module("panns_inference.models")


def randomize_batch_norms(model: nn.Module, seed: int) -> nn.Module:
    """Running statistics and affine weights away from their initial 0/1, so that a loader
    mixing them up cannot pass."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
                module.weight.copy_(0.5 + torch.rand(size, generator=generator))
                module.bias.copy_(0.1 * torch.randn(size, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def cnn14_reference(tmp_path_factory) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    reference = randomize_batch_norms(panns_models().Cnn14(
        sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000,
        classes_num=527), seed=1)
    path = tmp_path_factory.mktemp("panns") / "Cnn14_mAP=0.431.pth"
    torch.save({"model": reference.state_dict(), "iteration": 0}, path)  # as distributed
    return reference, path


def weak_mxh64_1024(classes: int = 527) -> nn.Sequential:
    """Kumar et al.'s network from the published layer list (layer1 .. layer19)."""
    def conv(cin: int, cout: int, kernel: int = 3, padding: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding),
                             nn.BatchNorm2d(cout), nn.ReLU())

    layers: dict[str, nn.Module] = {}
    widths = [(1, 16), (16, 16), None, (16, 32), (32, 32), None, (32, 64), (64, 64), None,
              (64, 128), (128, 128), None, (128, 256), (256, 256), None, (256, 512), None]
    for number, width in enumerate(widths, start=1):
        layers[f"layer{number}"] = conv(*width) if width else nn.MaxPool2d(2)
    layers["layer18"] = conv(512, 1024, kernel=2, padding=0)
    layers["layer19"] = nn.Sequential(nn.Conv2d(1024, classes, 1), nn.Sigmoid())
    return nn.Sequential(__import__("collections").OrderedDict(layers))


@pytest.fixture(scope="module")
def kumar_reference(tmp_path_factory) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    reference = randomize_batch_norms(weak_mxh64_1024(), seed=2)
    path = tmp_path_factory.mktemp("kumar") / "mx-h64-1024_0d3-1.17.pkl"
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, path)  # DataParallel
    return reference, path


def test_panns_front_end_matches_torchlibrosa(cnn14_reference):
    reference, _ = cnn14_reference
    wav = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 32000)).astype("f4"))
    ours = REGISTRY.create("featurizer", "plugins.panns_logmel", PANNS)(wav)  # [B, 1, 64, T]
    with torch.no_grad():
        theirs = reference.logmel_extractor(reference.spectrogram_extractor(wav))  # [B, 1, T, 64]
    assert ours.shape == (2, 1, 64, 101)
    torch.testing.assert_close(ours, theirs.transpose(-1, -2), atol=2e-3, rtol=1e-4)


def test_cnn14_loads_the_published_format_and_gives_the_reference_embedding(cnn14_reference):
    reference, path = cnn14_reference
    model = REGISTRY.create("model", f"plugins.cnn14:checkpoint={path}", PANNS, (1, 64, 101))
    model.eval()
    wav = torch.from_numpy(np.random.default_rng(1).standard_normal((3, 32000)).astype("f4"))
    features = REGISTRY.create("featurizer", "plugins.panns_logmel", PANNS)(wav)
    with torch.no_grad():
        theirs = reference(wav)["embedding"]
        ours = model.embed(features, torch.full((3,), 101))
    assert ours.shape == theirs.shape == (3, 2048)
    assert theirs.abs().max() > 1e-3  # the comparison is not one of zeros
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-3)
    assert model(features, torch.full((3,), 101)).shape == (3, 4)  # the new head


def test_cnn14_checkpoint_errors_are_one_line(cnn14_reference, tmp_path):
    reference, _ = cnn14_reference
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(Esc50Error, match=r"checkpoint .*nowhere.pth not found: expected "
                                         r"Cnn14_mAP=0.431.pth from https://zenodo.org"):
        REGISTRY.create("model", f"plugins.cnn14:checkpoint={missing}", PANNS, (1, 64, 101))
    state = dict(reference.state_dict())
    del state["conv_block3.bn1.weight"]
    state["extra.weight"] = torch.zeros(1)
    damaged = tmp_path / "damaged.pth"
    torch.save({"model": state}, damaged)
    with pytest.raises(Esc50Error) as info:
        REGISTRY.create("model", f"plugins.cnn14:checkpoint={damaged}", PANNS, (1, 64, 101))
    assert "missing: conv_block3.bn1.weight; unexpected: extra.weight" in str(info.value)
    assert "\n" not in str(info.value)
    at_16k = PANNS.override(sample_rate=16000)
    with pytest.raises(Esc50Error, match="mel filterbank is not plugins.panns_logmel's at "
                                         "sample_rate=16000"):
        REGISTRY.create("model", f"plugins.cnn14:checkpoint={damaged}", at_16k, (1, 64, 51))


def test_kumar_loads_the_published_weights_and_gives_the_papers_embedding(kumar_reference):
    reference, path = kumar_reference
    model = REGISTRY.create("model", f"plugins.kumar:checkpoint={path}", KUMAR, (1, 128, 128))
    model.eval()
    features = torch.randn(2, 1, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = reference[:18](features.transpose(-1, -2))  # time-major: [B, 1024, S, 1]
        ours = model.embed(features, torch.tensor([128, 128]))
    assert ours.shape == (2, 1024)
    torch.testing.assert_close(ours, theirs.mean(dim=(2, 3)), atol=1e-4, rtol=1e-3)
    with pytest.raises(Esc50Error, match="take 1 x 128 mel bands, not 1 x 64: use --featurizer "
                                         "plugins.kumar_logmel"):
        REGISTRY.create("model", f"plugins.kumar:checkpoint={path}", KUMAR, (1, 64, 128))
    partly = REGISTRY.create("model", "plugins.kumar:freeze_blocks=2", KUMAR, (1, 128, 128))
    optimized = {id(p) for group in parameter_groups(partly, 1e-3) for p in group["params"]}
    assert not any(id(p) in optimized for p in partly.blocks[:6].parameters())  # B1, B2
    assert all(id(p) in optimized for p in partly.blocks[6:].parameters())
    partly.train()
    assert not partly.blocks[4][1].training and partly.blocks[6][1].training  # batch norms


def tone_run(tmp_path: Path, rate: int, seconds: float = 1.0, **settings) -> Trainer:
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=2, folds=(1, 2))
    config = small_config(data, sample_rate=rate, length_wav=round(seconds * rate), batch_size=8,
                          output_dir=str(tmp_path / "runs"), progress=False).override(**settings)
    return Trainer(config, REGISTRY, log=lambda _: None)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_kumar_fine_tunes_with_a_slower_backbone_and_probes_linearly(kumar_reference, tmp_path):
    _, published = kumar_reference
    path = tmp_path / published.name  # a copy, removed once the run has trained
    path.write_bytes(published.read_bytes())
    finetune = tone_run(tmp_path / "f", 44100, model="plugins.kumar",
                        featurizer="plugins.kumar_logmel", num_epochs=1, run_name="ft", **{
                            "plugins.kumar.checkpoint": str(path),
                            "plugins.kumar.backbone_lr_scale": "0.1"})
    head, backbone = finetune.state.optimizer.param_groups
    assert backbone["lr"] == pytest.approx(0.1 * head["lr"])
    before = finetune.state.model.blocks[0][0].weight.detach().clone()
    run = finetune.fit()
    assert not torch.equal(before, finetune.state.model.blocks[0][0].weight)  # all layers train
    path.unlink()  # a trained run needs its own weights only, not the published file
    trained = esc50.load(run).classifier.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in finetune.state.model.state_dict().items())
    path = published
    probe = tone_run(tmp_path / "p", 44100, model="plugins.linear",
                     featurizer=f"plugins.kumar_embedding:checkpoint={path}", num_epochs=30,
                     learning_rate=0.05, run_name="probe")
    assert probe.classifier.featurizer.output_shape(44100) == (1, 1024, 1)
    assert probe.data.cache_is_final  # embedded once, before the first epoch
    frozen = {k: v.clone() for k, v in probe.classifier.featurizer.state_dict().items()}
    run = probe.fit()
    assert all(torch.equal(v, probe.classifier.featurizer.state_dict()[k])
               for k, v in frozen.items())  # weights and batch-norm statistics
    loaded = esc50.load(run)
    exported, _ = loaded.export("torchscript", tmp_path / "probe.pt")  # the backbone inside
    wav = torch.from_numpy(np.random.default_rng(4).uniform(-0.5, 0.5, (2, 44100)).astype("f4"))
    with torch.no_grad():
        expected = torch.softmax(loaded.classifier(wav, torch.full((2,), 44100)), dim=1)
    windows, _ = torch.jit.load(str(exported))(wav.flatten())  # windows at 0, 0.5 s and 1 s
    torch.testing.assert_close(windows[[0, 2]], expected, atol=1e-4, rtol=0)
    assert loaded.evaluate(fold=1)["accuracy"] >= 0.75


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_cnn14_fine_tunes_with_frozen_blocks_and_probes_linearly(cnn14_reference, tmp_path):
    _, path = cnn14_reference
    finetune = tone_run(tmp_path / "f", 32000, seconds=0.5, model="plugins.cnn14",
                        featurizer="plugins.panns_logmel", num_epochs=1, run_name="ft", **{
                            "plugins.cnn14.checkpoint": str(path),
                            "plugins.cnn14.freeze_blocks": "6"})
    model = finetune.state.model
    frozen = {k: v.clone() for k, v in model.conv_block6.state_dict().items()}
    fc1 = model.fc1.weight.detach().clone()
    finetune.fit()
    assert all(torch.equal(v, model.conv_block6.state_dict()[k]) for k, v in frozen.items())
    assert not torch.equal(fc1, model.fc1.weight)
    probe = tone_run(tmp_path / "p", 32000, seconds=0.5, model="plugins.linear",
                     featurizer=f"plugins.cnn14_embedding:checkpoint={path}", num_epochs=30,
                     learning_rate=0.05, run_name="probe")
    run = probe.fit()
    assert esc50.load(run).evaluate(fold=1)["accuracy"] >= 0.75


@pytest.mark.parametrize("recipe", ["cnn14-finetune", "cnn14-probe", "kumar-finetune",
                                    "kumar-probe", "ast-finetune", "ast-probe"])
def test_pretrained_recipes_name_the_published_file_when_it_is_missing(recipe, tmp_path,
                                                                       monkeypatch):
    from esc50.core.training.classifier import build_classifier
    from esc50.core.config import load_config, recipe_path

    config = load_config(recipe_path(recipe))
    for spec in config.augs:  # every augmentation and option in it is valid
        REGISTRY.create("augmentation", spec, config)
    monkeypatch.chdir(tmp_path)  # the recipes look for the file in the current folder
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # no network here
    with pytest.raises(Esc50Error, match=r"checkpoint \S+ not found: expected (Cnn14_mAP=0.431"
                                         r".pth from https://zenodo|mx-h64-1024_0d3-1.17.pkl "
                                         r"from github.com/anuragkr90)|AST checkpoint "
                                         r"'MIT/ast-finetuned-audioset-10-10-0.4593' cannot be "
                                         r"loaded"):
        build_classifier(config.for_dataset([str(i) for i in range(50)], 44100, 5.0), REGISTRY)


AST_CONFIG = TaskConfig().override(sample_rate=16000, length_wav=16000, num_classes=4)


@pytest.fixture(scope="module")
def ast_reference(tmp_path_factory) -> tuple[nn.Module, Path]:
    """A tiny ASTForAudioClassification (random weights) saved with save_pretrained."""
    import transformers

    torch.manual_seed(0)
    reference = transformers.ASTForAudioClassification(transformers.ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_length=100, num_mel_bins=128, num_labels=527)).eval()
    path = tmp_path_factory.mktemp("ast") / "ast-tiny"
    reference.save_pretrained(path)
    return reference, path


def test_ast_front_end_matches_the_feature_extractor():
    import transformers

    wav = np.random.default_rng(5).uniform(-0.3, 0.3, 16000).astype("f4")
    extractor = transformers.ASTFeatureExtractor(max_length=100)
    theirs = extractor(wav, sampling_rate=16000, return_tensors="pt")["input_values"]
    ours = REGISTRY.create("featurizer", "plugins.ast_fbank:max_length=100", AST_CONFIG)(
        torch.from_numpy(wav)[None])
    assert ours.shape == (1, 1, 128, 100) and theirs.shape == (1, 100, 128)
    torch.testing.assert_close(ours[:, 0].transpose(1, 2), theirs, atol=1e-4, rtol=1e-4)


def test_ast_loads_a_saved_checkpoint_and_gives_its_pooled_output(ast_reference, tmp_path,
                                                                  monkeypatch):
    reference, path = ast_reference
    model = REGISTRY.create("model", f"plugins.ast:source={path}", AST_CONFIG, (1, 128, 100))
    model.eval()
    features = torch.randn(2, 1, 128, 100, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        theirs = reference.audio_spectrogram_transformer(
            input_values=features[:, 0].transpose(1, 2)).pooler_output
        ours = model.embed(features, torch.tensor([100, 100]))
    torch.testing.assert_close(ours, theirs)
    assert model(features, torch.tensor([100, 100])).shape == (2, 4)  # the new head
    with pytest.raises(Esc50Error, match=r"takes 100 frames of 128 bands, the featurizer gives "
                                         r"1024 of 128: --featurizer plugins.ast_fbank:"
                                         r"max_length=100,n_mels=128"):
        REGISTRY.create("model", f"plugins.ast:source={path}", AST_CONFIG, (1, 128, 1024))
    import shutil

    from safetensors.torch import load_file, save_file

    damaged = tmp_path / "damaged"
    shutil.copytree(path, damaged)
    weights = load_file(damaged / "model.safetensors")
    del weights["audio_spectrogram_transformer.encoder.layer.1.output.dense.weight"]
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(Esc50Error, match=r"does not fit ASTModel: missing \['[\w.]+'\], "
                                         r"unexpected \[\]"):  # key names vary by version
        REGISTRY.create("model", f"plugins.ast:source={damaged}", AST_CONFIG, (1, 128, 100))
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    with pytest.raises(Esc50Error, match=r"^model plugins.ast: plugins.ast needs the "
                                         r"transformers package: pip install "
                                         r"'esc50\[pretrained\]'$"):
        REGISTRY.create("model", f"plugins.ast:source={path}", AST_CONFIG, (1, 128, 100))


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_ast_fine_tunes_and_probes_linearly(ast_reference, tmp_path):
    _, path = ast_reference
    finetune = tone_run(tmp_path / "f", 16000, model=f"plugins.ast:source={path},freeze_blocks=1",
                        featurizer="plugins.ast_fbank:max_length=100", normalize=False,
                        num_epochs=1, run_name="ft")
    head, encoder = finetune.state.optimizer.param_groups
    assert encoder["lr"] == pytest.approx(0.1 * head["lr"])
    encoder = finetune.state.model.encoder
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    run = finetune.fit()
    moved = {k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and not any(k.startswith(("embeddings.", "layers.0.")) for k in moved)
    assert any(k.startswith("layers.1.") for k in moved)  # the layer after the frozen one
    trained = esc50.load(run).classifier.model.state_dict()  # the run's weights, not the source's
    assert all(torch.equal(v, trained[k]) for k, v in finetune.state.model.state_dict().items())
    probe = tone_run(tmp_path / "p", 16000, model="plugins.linear",
                     featurizer=f"plugins.ast_embedding:source={path}", num_epochs=30,
                     learning_rate=0.05, run_name="probe")
    assert probe.classifier.featurizer.output_shape(16000) == (1, 32, 1)
    run = probe.fit()
    assert esc50.load(run).evaluate(fold=1)["accuracy"] >= 0.75


def test_a_linear_probe_cross_validates_on_embeddings_computed_once(kumar_reference, tmp_path,
                                                                    monkeypatch):
    from esc50.plugins.featurizers.embedding import Embedding

    _, path = kumar_reference
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=2, folds=(1, 2, 3))
    embedded = []
    forward = Embedding.forward
    monkeypatch.setattr(Embedding, "forward",
                        lambda self, wav: embedded.append(len(wav)) or forward(self, wav))
    lines = []
    result = esc50.cv(model="plugins.linear", data=str(data), epochs=2, name="probe",
                      featurizer=f"plugins.kumar_embedding:checkpoint={path}",
                      sample_rate=44100, length_wav=44100, batch_size=8, progress=False,
                      output_dir=str(tmp_path / "runs"), log=lines.append)
    assert len(result.runs) == 3
    setups = [line.split(" ")[0] for line in lines if " clips from " in line]
    assert setups == ["decoded", "reused", "reused"]  # audio decoded for the first fold only
    # each clip once, each fold's 2-clip set-up check, and the one clip whose featurizing is
    # measured to plan memory before the first fold decodes
    assert sum(embedded) == 24 + 3 * 2 + 1
