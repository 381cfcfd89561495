"""Plugin contracts checked at run time: a plugin that breaks its contract gets one line naming
it, its package, what it returned and what was expected, before the run makes its folder."""

import types

import pytest
import torch
from torch import nn

from esc50.core.config import TaskConfig
from esc50.core.plugin_api.contracts import Augmentation, Featurizer
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.hookspecs import hookimpl
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import small_config


class WrongClasses(nn.Module):
    """Logits for 53 classes whatever the dataset has."""

    name = "wrong"

    def __init__(self, config: TaskConfig, input_shape, shape: str = "53") -> None:
        super().__init__()
        self.linear = nn.Linear(input_shape[1], 53)
        self.shape = shape

    def forward(self, features, frame_lengths):
        logits = self.linear(features.mean(dim=(1, 3)))
        return logits if self.shape == "53" else logits[:, 0]


class DropOne(Augmentation):
    """Loses the last example of the batch."""

    name = "dropone"

    def __init__(self, config: TaskConfig, p: float = 1.0) -> None:
        super().__init__(p)

    def apply(self, wav, chosen, params, generator):
        return wav[:-1]


class NaNs(Featurizer):
    """A featurizer whose output is NaN."""

    name = "nans"

    def __init__(self, config: TaskConfig) -> None:
        super().__init__()
        self.hop = 64

    def forward(self, wav):
        return torch.full((wav.shape[0], 1, 8, wav.shape[1] // self.hop + 1), float("nan"))

    def frame_lengths(self, lengths):
        return lengths // self.hop + 1

    def output_shape(self, num_samples):
        return (1, 8, num_samples // self.hop + 1)


class HalfTime(NaNs):
    """Features with half the frames it declares (a pooling it forgot to declare)."""

    name = "halftime"

    def forward(self, wav):
        frames = (wav.shape[1] // self.hop + 1) // 2
        return torch.randn(wav.shape[0], 1, 8, frames)


class TwoClips(WrongClasses):
    """Right for the set-up pass's two clips, wrong for any other batch."""

    name = "twoclips"

    def forward(self, features, frame_lengths):
        return self.linear(features.mean(dim=(1, 3)))[:2, :4]


@hookimpl(specname="register_models")
def models(register):
    register(WrongClasses)
    register(TwoClips)


@hookimpl(specname="register_augmentations")
def augmentations(register):
    register(DropOne)


@hookimpl(specname="register_featurizers")
def featurizers(register):
    register(NaNs)
    register(HalfTime)


@pytest.mark.parametrize("changes, message", [
    ({"model": "bad.wrong"}, "model bad.wrong (tests 9.9) returned a torch.float32 tensor of "
                             "shape [2, 53]; expected logits of shape [2, 4] (batch, num_classes)"),
    ({"model": "bad.wrong:shape=flat"}, "returned a torch.float32 tensor of shape [2]; expected "
                                        "logits of shape [2, 4]"),
    ({"augs": ["bad.dropone"]}, "augmentation bad.dropone (tests 9.9) returned a torch.float32 "
                                "tensor of shape [1, 8000] for a torch.float32 tensor of shape "
                                "[2, 8000]; an augmentation must keep the batch size"),
    ({"featurizer": "bad.nans"}, "featurizer bad.nans (tests 9.9) returned 2016 NaN or infinite "
                                 "value(s)"),
    ({"featurizer": "bad.halftime"}, "featurizer bad.halftime (tests 9.9) gave 63 frames for "
                                     "8000 samples, but its output_shape(8000) declares 126"),
    ({"model": "bad.twoclips"}, "model bad.twoclips (tests 9.9) returned a torch.float32 tensor "
                                "of shape [2, 4]; expected logits of shape [4, 4] (batch, "
                                "num_classes), floating point in the memory plan (a training "
                                "step of 4 clips)"),
])
def test_a_broken_contract_is_one_line_naming_the_plugin(synthetic_data, tmp_path, changes,
                                                          message):
    registry = load_registry()
    plugin = types.SimpleNamespace(__name__="bad_plugin", register_models=models,
                                   register_augmentations=augmentations,
                                   register_featurizers=featurizers)
    registry.register_plugin(plugin, "bad", package="tests", version="9.9")
    config = small_config(synthetic_data, output_dir=str(tmp_path / "runs"), run_name="r",
                          normalize=False, **changes)
    with pytest.raises(Esc50Error) as info:
        Trainer(config, registry, log=lambda _: None)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "runs" / "r").exists()  # nothing left behind


def test_a_run_interrupted_in_its_first_epoch_leaves_no_folder(synthetic_data, tmp_path,
                                                               monkeypatch):
    def interrupt(self, epoch, training):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run_epoch", interrupt)
    trainer = Trainer(small_config(synthetic_data, output_dir=str(tmp_path), run_name="r"),
                      load_registry(), log=lambda _: None)
    with pytest.raises(Esc50Error, match="before any epoch finished: nothing was kept"):
        trainer.fit()
    assert not (tmp_path / "r").exists()


def test_esc50_testing_runs_the_same_checks_for_plugin_authors():
    from esc50.testing import check_augmentation, check_featurizer, check_model

    registry = load_registry()
    plugin = types.SimpleNamespace(__name__="bad_plugin", register_models=models,
                                   register_augmentations=augmentations,
                                   register_featurizers=featurizers)
    registry.register_plugin(plugin, "bad", package="tests", version="9.9")
    check_model("plugins.crnn", registry)
    check_augmentation("plugins.spec_noise:p=1", registry)
    check_featurizer("plugins.mfcc:n_mfcc=20", registry)
    with pytest.raises(Esc50Error, match=r"model bad.wrong \(tests 9.9\) returned .* \[2, 53\]"):
        check_model("bad.wrong", registry)
    with pytest.raises(Esc50Error, match="augmentation bad.dropone .* must keep the batch size"):
        check_augmentation("bad.dropone", registry)
    with pytest.raises(Esc50Error, match="featurizer bad.nans .* NaN or infinite"):
        check_featurizer("bad.nans", registry, normalize=False)
    with pytest.raises(Esc50Error, match=r"^featurizer bad.halftime .* gave 63 frames for 8000 "
                                         r"samples, but its output_shape\(8000\) declares 126"):
        check_featurizer("bad.halftime", registry, normalize=False)
    with pytest.raises(Esc50Error, match=r"^model bad.twoclips .* returned .* \[2, 4\]; "
                                         r"expected logits of shape \[3, 4\] .* in the memory plan"):
        check_model("bad.twoclips", registry)


def test_a_loss_that_turns_nan_in_training_stops_the_run_with_one_line(synthetic_data, tmp_path):
    class NaNWhenTraining(nn.Module):
        name = "nantrain"

        def __init__(self, config, input_shape):
            super().__init__()
            self.linear = nn.Linear(input_shape[1], config.num_classes)

        def forward(self, features, frame_lengths):
            logits = self.linear(features.mean(dim=(1, 3)))
            return logits * float("nan") if self.training else logits

    @hookimpl(specname="register_models")
    def hook(register):
        register(NaNWhenTraining)

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="m", register_models=hook), "odd")
    trainer = Trainer(small_config(synthetic_data, model="odd.nantrain", output_dir=str(tmp_path),
                                   run_name="r"), registry, log=lambda _: None)
    with pytest.raises(Esc50Error, match=r"epoch 1 train: the loss became nan \(by step 1\); "
                                         r"model odd.nantrain \(registered at run time\) "
                                         r"returned 64 NaN .* at epoch 1, step 1 "
                                         r"\(checked again\)"):
        trainer.fit()
    assert not (tmp_path / "r").exists()


class RareNaN(Augmentation):
    """Turns about one clip in ten of a training batch to NaN, by its own draws (none in the
    set-up pass's two clips, which would name it before training)."""

    name = "rarenan"

    def __init__(self, config: TaskConfig, p: float = 1.0) -> None:
        super().__init__(p)

    def sample(self, batch_size, generator):
        return {"u": torch.rand(batch_size, generator=generator, device=generator.device)}

    def apply(self, wav, chosen, params, generator):
        bad = (params["u"].to(wav.device) < 0.1) & chosen.to(wav.device) & (len(wav) > 2)
        return torch.where(bad[:, None], torch.full_like(wav, float("nan")), wav)


def test_an_augmentation_that_rarely_makes_nan_is_named_not_the_model(synthetic_data, tmp_path):
    """The loss goes NaN a few steps after the batch that made it; the batches since the last
    check are prepared again with their own draws, so the augmentation is named, not the model
    whose weights the NaN reached by then."""
    @hookimpl(specname="register_augmentations")
    def hook(register):
        register(RareNaN)

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="nan_plugin",
                                                   register_augmentations=hook), "odd")
    config = small_config(synthetic_data, output_dir=str(tmp_path), run_name="r", batch_size=4,
                          augs=["odd.rarenan"], num_epochs=2)
    with pytest.raises(Esc50Error, match=r"the loss became nan .*; augmentation odd.rarenan "
                                         r"\(registered at run time\) returned \d+ NaN .* at "
                                         r"epoch 1, step \d+ \(checked again\)"):
        Trainer(config, registry, log=lambda _: None).fit()
