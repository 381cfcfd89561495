"""Each hook, used as a third party would (a plugin registered at run time, trained through the
real trainer), the augmentation template, and datasette-style meta-tests: every hook has a test
and a docs section, every built-in plugin id is exercised by a test."""

import configparser
import json
import re
import types
from pathlib import Path

import pluggy
import pytest
import soundfile as sf
import torch
from torch import nn

from esc50.core.plugin_api import hookspecs
from esc50.core.config import TaskConfig
from esc50.core.results.checkpoint import load_checkpoint
from esc50.core.plugin_api.contracts import Augmentation, BatchAugmentation, Featurizer, uniform
from esc50.core.plugin_api.contracts import Clip, ClipTable, DatasetReader
from esc50.core.plugin_api.hookspecs import hookimpl
from esc50.core.plugin_api.hookspecs import KINDS, TRAINED_HOOK, WEIGHTS_HOOK
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import FREQS, SR, small_config, tone, write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]


def hook_specifications() -> list[str]:
    """The hooks pluggy finds in esc50's hook specification module."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return sorted(name for name in vars(manager.hook) if not name.startswith("_"))


HOOKS = hook_specifications()


class MeanPool(nn.Module):
    """Mean over time of every band, then a linear layer."""

    name = "meanpool"

    def __init__(self, config: TaskConfig, input_shape, scale: float = 1.0) -> None:
        super().__init__()
        channels, bins, _ = input_shape
        self.linear = nn.Linear(channels * bins, config.num_classes)
        self.scale = scale

    def forward(self, features, frame_lengths):
        return self.linear(features.mean(dim=-1).flatten(1)) * self.scale


class Gain(Augmentation):
    """Scale waveforms by a gain drawn from [min_gain, max_gain]."""

    name = "gain"

    def __init__(self, config: TaskConfig, min_gain: float = 0.5, max_gain: float = 0.9,
                 p: float = 0.5) -> None:
        super().__init__(p)
        self.min_gain, self.max_gain = min_gain, max_gain

    def sample(self, batch_size, generator):
        return {"gain": uniform(self.min_gain, self.max_gain, batch_size, generator)}

    def apply(self, wav, chosen, params, generator):
        return wav * torch.where(chosen, params["gain"], 1.0)[:, None]


class BandEnergy(Featurizer):
    """Log energy in linear frequency bands of a framed waveform."""

    name = "bands"

    def __init__(self, config: TaskConfig, bands: int = 16, n_fft: int = 256, hop: int = 64
                 ) -> None:
        super().__init__()
        self.n_fft, self.hop, self.bands = n_fft, hop, bands

    def forward(self, wav):
        spec = torch.stft(wav, self.n_fft, self.hop, window=torch.hann_window(self.n_fft),
                          return_complex=True).abs().pow(2)  # [B, bins, frames]
        usable = spec.shape[1] // self.bands * self.bands
        banded = spec[:, :usable].unflatten(1, (self.bands, -1)).sum(2)
        return torch.log(banded + 1e-8).unsqueeze(1)

    def frame_lengths(self, lengths):
        return lengths // self.hop + 1

    def output_shape(self, num_samples):
        return (1, self.bands, num_samples // self.hop + 1)


def runtime_registry(**hooks):
    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="tests", **hooks), "mine")
    return registry


def train(tmp_path, registry, **changes):
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=4)
    config = small_config(data, output_dir=str(tmp_path / "runs"), **changes)
    trainer = Trainer(config, registry, log=lambda _: None)
    run_dir = trainer.fit()
    return trainer, json.loads((run_dir / "metrics.json").read_text())


def test_hook_register_models(tmp_path):
    @hookimpl(specname="register_models")
    def hook(register):
        register(MeanPool)

    trainer, metrics = train(tmp_path, runtime_registry(register_models=hook),
                             model="mine.meanpool:scale=2", learning_rate=3e-2, num_epochs=8)
    assert isinstance(trainer.state.model, MeanPool) and trainer.state.model.scale == 2.0
    assert metrics["plugins"]["mine.meanpool:scale=2"]["id"] == "mine.meanpool"
    assert metrics["final_val_accuracy"] >= 0.75  # four tones, chance 0.25


def test_hook_register_augmentations(tmp_path):
    @hookimpl(specname="register_augmentations")
    def hook(register):
        register(Gain)

    trainer, metrics = train(tmp_path, runtime_registry(register_augmentations=hook),
                             augs=["mine.gain:p=0.5"], num_epochs=2)
    counts = metrics["augmented_in_last_epoch"]["mine.gain:p=0.5"]
    assert counts["seen"] == len(trainer.data.train_set)  # training clips only, once per epoch
    assert 0 < counts["transformed"] < counts["seen"]
    gain = trainer.augs["mine.gain:p=0.5"]
    assert set(gain.last_params) == {"chosen", "gain"}


def test_hook_register_featurizers(tmp_path):
    @hookimpl(specname="register_featurizers")
    def hook(register):
        register(BandEnergy)

    trainer, metrics = train(tmp_path, runtime_registry(register_featurizers=hook),
                             featurizer="mine.bands:bands=32", num_epochs=8)
    assert trainer.data.cache[0].shape[1:] == (1, 32, 126)  # cached once: no waveform aug
    assert metrics["final_val_accuracy"] >= 0.75


class Tones(DatasetReader):
    """Files named <label>_<anything>.wav in one folder; the label prefix is the class."""

    name = "tones"

    def __init__(self, config: TaskConfig, clip_seconds: float = 1.0) -> None:
        self.clip_seconds = clip_seconds

    def read(self, root):
        files = sorted(root.glob("*.wav"))
        names = sorted({f.name.split("_")[0] for f in files})
        clips = [Clip(f, 0, names.index(f.name.split("_")[0]), f.stem) for f in files]
        return ClipTable(root, clips, names, 8000, self.clip_seconds)


def test_hook_register_datasets(tmp_path):
    @hookimpl(specname="register_datasets")
    def hook(register):
        register(Tones)

    data = tmp_path / "flat"
    data.mkdir()
    for i, freq in enumerate(FREQS):
        for k in range(6):
            sf.write(data / f"{['low', 'mid', 'high', 'top'][i]}_{k}.wav",
                     tone(freq * (1 + 0.02 * k), seed=k), SR)
    config = small_config(data, dataset="mine.tones:clip_seconds=0.5", num_classes=None,
                          sample_rate=None, length_wav=None, output_dir=str(tmp_path / "runs"),
                          num_epochs=6, train_ratio=0.5)
    trainer = Trainer(config, runtime_registry(register_datasets=hook), log=lambda _: None)
    assert trainer.class_names == ["high", "low", "mid", "top"]
    assert (trainer.config.num_classes, trainer.config.sample_rate, trainer.config.length_wav) \
        == (4, 8000, 4000)  # what the dataset decides
    assert trainer.split.description.startswith("grouped random split")  # it has no folds
    state = load_checkpoint(trainer.fit() / "last.pt")
    assert state["plugins"]["mine.tones:clip_seconds=0.5"]["id"] == "mine.tones"
    assert state["class_names"] == ["high", "low", "mid", "top"]


def test_the_template_draws_p_records_parameters_and_applies_to_the_chosen_only():
    gain = Gain(TaskConfig(), min_gain=0.5, max_gain=0.5, p=0.5)
    wav = torch.ones(1000, 4)
    out = gain(wav, torch.Generator().manual_seed(0))
    chosen = gain.last_params["chosen"]
    assert 400 < int(chosen.sum()) < 600  # p = 0.5 of 1000 examples
    assert torch.equal(out[chosen], torch.full((int(chosen.sum()), 4), 0.5))
    assert torch.equal(out[~chosen], wav[~chosen])
    assert gain.counts() == {"seen": 1000, "transformed": int(chosen.sum())}
    again = Gain(TaskConfig(), p=0.5)(wav, torch.Generator().manual_seed(0))
    assert torch.equal(again != 1, out != 1)  # the same draws from the same seed

    class Swap(BatchAugmentation):
        def apply(self, features, targets, chosen, params, generator):
            return features.flip(0), targets.flip(0)

    features, targets = Swap(p=1.0)(torch.arange(3.0), torch.eye(3), torch.Generator())
    assert features.tolist() == [2.0, 1.0, 0.0] and Swap.stage == "batch"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_kind_a_test_and_a_docs_section(hook):
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert hook in {*KINDS.values(), WEIGHTS_HOOK, TRAINED_HOOK}, \
        f"{hook} is handled by no part of the registry"
    assert f"def test_hook_{hook}(" in tests, hook
    assert f"### `{hook}(register)`" in docs, hook


def test_the_hook_specifications_are_found():
    assert len(HOOKS) >= 5 and all(h.startswith("register_") for h in HOOKS)


def test_every_builtin_plugin_id_is_exercised_by_a_test():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    modules = setup["options.entry_points"]["esc50"].strip().splitlines()
    ids = [c.id for c in load_registry().components.values() if c.package == "esc50"]
    assert len(modules) == len(ids) == 39  # one id per entry point (tests/test_registry.py)
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for plugin_id in ids:
        name = plugin_id.split(".", 1)[1]
        used = re.search(rf'"(plugins\.)?{name}[":]|\b{name}\b\s*[,\]]|f"plugins\.{{name}}"',
                         tests)
        assert used, f"{plugin_id} has no test"


def test_no_builtin_augmentation_reimplements_p():
    for module in (ROOT / "plugins" / "augs").glob("*.py"):
        text = module.read_text()
        assert "self.chosen(" not in text and "self.p " not in text, module.name
        assert "def forward(" not in text, f"{module.name}: use sample/apply, not forward"


def test_every_public_name_the_author_reference_mentions_exists():
    import importlib

    docs = (ROOT / "docs" / "plugins.md").read_text()
    reference = docs.split("## Reference for authors", 1)[1].split("Conventions:", 1)[0]
    rows = [line.split("|")[1:3] for line in reference.splitlines() if line.startswith("| `")]
    assert len(rows) >= 15
    for names, where in rows:
        module = importlib.import_module(where.split("`")[1])
        for name in re.findall(r"`(\w+)", names):
            assert hasattr(module, name), f"{name} is not in {module.__name__}"
    fields = docs.split("TaskConfig fields a plugin may read", 1)[1]
    named = [n for line in re.findall(r"^\| ((?:`\w+`(?:, )?)+) \|", fields, flags=re.M)
             for n in re.findall(r"`(\w+)`", line)]
    assert len(named) >= 7
    for field in named:
        assert field in TaskConfig.__dataclass_fields__, field
