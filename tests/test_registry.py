import types
from importlib.metadata import entry_points

import pytest
import torch

from esc50.core.config import TaskConfig
from esc50.core.plugin_api.contracts import Augmentation
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.hookspecs import hookimpl
from esc50.core.plugin_api.components import parse_spec
from esc50.core.plugin_api.registry import load_registry


class Louder(Augmentation):
    """Multiply the waveform by a gain."""

    name = "louder"

    def __init__(self, config: TaskConfig, gain: float = 2.0, p: float = 1.0) -> None:
        super().__init__(p)
        self.gain = gain

    def apply(self, wav, chosen, params, generator):
        return wav * torch.where(chosen, self.gain, 1.0)[:, None]


def make_plugin(**hooks):
    return types.SimpleNamespace(__name__="test_plugin", **hooks)


def plugin_registering(*factories):
    @hookimpl(specname="register_augmentations")
    def hook(register):
        for factory in factories:
            register(factory)
    return make_plugin(register_augmentations=hook)


def test_builtins_come_from_entry_points_of_the_installed_package():
    eps = {ep.name: ep for ep in entry_points(group="esc50")}
    assert eps["plugins.crnn"].dist.name == "esc50"
    registry = load_registry()
    assert registry.problems == []
    ids = set(registry.components)
    assert {"plugins.crnn", "plugins.noise", "plugins.logmel"} <= ids
    crnn = registry.resolve("model", "plugins.crnn")
    assert crnn.package == "esc50" and crnn.description.startswith("CRNN")


def test_each_builtin_entry_point_is_named_for_the_one_id_it_registers():
    registry = load_registry()
    builtin = [ep for ep in entry_points(group="esc50") if ep.dist.name == "esc50"]
    registered = {ep.name: {c.id for c in registry.components.values()
                            if c.factory.__module__ == ep.value} for ep in builtin}
    assert registered == {ep.name: {ep.name} for ep in builtin}
    assert {c.id for c in registry.components.values() if c.package == "esc50"} == set(registered)


def test_bare_names_resolve_when_unambiguous():
    registry = load_registry()
    assert registry.resolve("model", "crnn").id == "plugins.crnn"
    assert registry.resolve("augmentation", "noise").id == "plugins.noise"


def test_unknown_id_lists_close_matches():
    registry = load_registry()
    with pytest.raises(Esc50Error, match=r"unknown model 'plugins\.crn'; did you mean plugins\.crnn"):
        registry.resolve("model", "plugins.crn")
    with pytest.raises(Esc50Error, match="unknown augmentation 'zzz'; available: plugins.gaussian, "
                       "plugins.mixup, plugins.noise"):
        registry.resolve("augmentation", "zzz")


def test_runtime_plugin_registers_and_builds_with_options():
    registry = load_registry()
    registry.register_plugin(plugin_registering(Louder), "mine")
    aug = registry.create("augmentation", "mine.louder:gain=3", TaskConfig())
    assert isinstance(aug, Louder) and aug.gain == 3.0
    out = aug(torch.ones(2, 4), torch.Generator())
    assert torch.equal(out, torch.full((2, 4), 3.0))


def test_a_subclass_passing_args_on_gets_them_as_its_base_class_asks():
    """A factory whose ``__init__`` is ``(*args, **kwargs)`` gets the run's config when the
    class it passes them on to names a ``config`` parameter, and not when that class reads
    none."""
    from esc50.plugins.augs.gaussian import GaussianNoise
    from esc50.plugins.models.lstm import LSTMClassifier

    class Quiet(GaussianNoise):
        name = "quiet"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

    class Wrapped(LSTMClassifier):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

    registry = load_registry()

    @hookimpl(specname="register_models")
    def models(register):
        register(Wrapped, name="wrapped")

    registry.register_plugin(make_plugin(register_models=models), "mine")
    registry.register_plugin(plugin_registering(Quiet), "mine")
    config = TaskConfig().override(num_classes=3)
    assert registry.create("augmentation", "mine.quiet:max_std=0.5", config).max_std == 0.5
    model = registry.create("model", "mine.wrapped", config, (1, 16, 20))
    assert model(torch.zeros(2, 1, 16, 20), torch.tensor([20, 20])).shape == (2, 3)


def test_same_name_in_two_namespaces_is_ambiguous_unless_qualified():
    registry = load_registry()
    registry.register_plugin(plugin_registering(Louder), "one")
    registry.register_plugin(plugin_registering(Louder), "two")
    with pytest.raises(Esc50Error, match="ambiguous: it could be one.louder, two.louder"):
        registry.resolve("augmentation", "louder")
    assert registry.resolve("augmentation", "two.louder").id == "two.louder"


def test_invalid_options_are_rejected_with_the_option_named():
    registry = load_registry()
    with pytest.raises(Esc50Error, match="has no option 'snr'"):
        registry.create("augmentation", "noise:snr=3", TaskConfig())
    with pytest.raises(Esc50Error, match="option min_snr_db='abc' is not a valid float"):
        registry.create("augmentation", "noise:min_snr_db=abc", TaskConfig())
    with pytest.raises(Esc50Error, match="min_snr_db=30.0 is larger than max_snr_db=10.0"):
        registry.create("augmentation", "noise:min_snr_db=30,max_snr_db=10", TaskConfig())
    with pytest.raises(Esc50Error, match="expected key=value"):
        parse_spec("noise:p")


def test_a_plugin_failing_in_its_hook_is_isolated():
    @hookimpl(specname="register_models")
    def broken(register):
        raise RuntimeError("boom")

    registry = load_registry()
    registry.register_plugin(make_plugin(register_models=broken), "bad")
    assert any("bad" in p and "RuntimeError: boom" in p for p in registry.problems)
    assert registry.resolve("model", "crnn").id == "plugins.crnn"


def test_duplicate_ids_and_wrong_api_version_are_reported():
    registry = load_registry()
    registry.register_plugin(plugin_registering(Louder, Louder), "dup")
    assert any("dup.louder is claimed by both" in p for p in registry.problems)
    old = plugin_registering(Louder)
    old.ESC50_PLUGIN_API = 0
    registry.register_plugin(old, "old")
    assert any("declares ESC50_PLUGIN_API = 0, which is not a plugin API version" in p
               for p in registry.problems)
    assert "old.louder" not in registry.components
    new = plugin_registering(Louder)
    new.ESC50_PLUGIN_API = 99
    registry.register_plugin(new, "new")
    assert any("built for plugin API 99, newer than" in p for p in registry.problems)
    assert "new.louder" not in registry.components
