"""Every built-in model: shapes for several lengths, gradients, overfitting a tiny real batch,
and starting from a saved state dict (--weights)."""

import numpy as np
import pytest
import torch

from esc50.core.training.classifier import Classifier
from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from esc50.testing import SMALL_STFT
from tests.conftest import FREQS, SR, tone

MODELS = ["baseline", "advanced", "lstm", "crnn", "vgg19", "kumar", "rescnn"]
CONFIG = TaskConfig().override(sample_rate=SR, length_wav=SR, num_classes=len(FREQS),
                               options={"plugins.logmel": SMALL_STFT,
                                        "plugins.crnn": {"hidden_size": 32, "kernel_size": [5, 8],
                                                         "stride": [2, 4]},
                                        "plugins.lstm": {"hidden_size": 32}})


BANDS, FRAMES = 32, 126  # the features of 1 s at 8 kHz: 32 mel bands, hop 64


def build(name: str, config: TaskConfig = CONFIG, frames: int = FRAMES) -> torch.nn.Module:
    torch.manual_seed(0)
    return load_registry().create("model", f"plugins.{name}", config, (1, BANDS, frames))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("frames", [20, 126, 400])
def test_output_shape_for_several_lengths(name, frames):
    model = build(name).eval()
    features = torch.randn(3, 1, BANDS, frames)
    lengths = torch.tensor([frames, frames // 2, frames])  # a padded batch
    assert model(features, lengths).shape == (3, len(FREQS))


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    model = build(name).train()
    logits = model(torch.randn(4, 1, BANDS, 126), torch.tensor([126, 126, 90, 60]))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert dead == []


def test_a_crnn_checkpoint_with_the_attentions_dead_bias_still_loads():
    """The attention's last bias (added to every frame before a softmax over frames, so it
    never learned) is gone; checkpoints that hold it load, giving the same logits."""
    model = build("crnn").eval()
    assert "attention.energy.2.bias" not in model.state_dict()
    older = {**model.state_dict(), "attention.energy.2.bias": torch.tensor([0.37])}
    loaded = build("crnn").eval()
    loaded.load_state_dict(older)
    features = torch.randn(2, 1, BANDS, FRAMES)
    lengths = torch.tensor([FRAMES, FRAMES])
    torch.testing.assert_close(loaded(features, lengths), model(features, lengths))


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.parametrize("name", MODELS)
def test_channels_last_layout_gives_the_same_logits(name):
    featurizer = load_registry().create("featurizer", "plugins.logmel", CONFIG)
    plain = Classifier(featurizer, build(name).eval())
    fast = Classifier(featurizer, build(name).eval(), channels_last=True)
    convs = [m.weight for m in fast.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not plain.model_input(torch.zeros(2, 3, 4, 5)).is_contiguous(
        memory_format=torch.channels_last)
    wav = torch.from_numpy(np.stack([tone(f, seed=i) for i, f in enumerate(FREQS)]))
    lengths = torch.tensor([SR, SR, SR // 2, SR])
    torch.testing.assert_close(fast(wav, lengths), plain(wav, lengths), rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.parametrize("name", [m for m in MODELS if m != "vgg19"])
def test_overfits_its_training_clips_through_the_trainer(name, tmp_path):
    """Each model, trained by the Trainer as `esc50 train` runs it (sampler, optimizer, cosine
    schedule, batch norm in training mode), ends up classifying every one of its training clips
    (fold 2 of the tone task) correctly in evaluation mode."""
    from esc50.commands import api
    from esc50.core.training.trainer import Trainer
    from tests.conftest import small_config, write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2))
    config = small_config(data, model=f"plugins.{name}", batch_size=8, options=CONFIG.options,
                          num_epochs=40, output_dir=str(tmp_path / "runs"), run_name=name)
    run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
    report = api.load(run_dir).evaluate(fold=2, training_clips=True)
    assert report["clips"] == 8 and report["accuracy"] == 1.0, report["accuracy"]


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_vgg19_memorizes_a_tiny_batch():
    """VGG19 apart, with its own few steps: through the Trainer every epoch would write a 1.7 GB
    checkpoint (140M parameters with Adam's state), and from scratch, without batch norm, it
    needs more steps than the suite can give it there."""
    featurizer = load_registry().create("featurizer", "plugins.logmel", CONFIG)
    clips = [tone(f * (1 + 0.02 * k), seed=k) for f in FREQS for k in range(2)]
    features = featurizer(torch.from_numpy(np.stack(clips)))
    labels = torch.arange(len(FREQS)).repeat_interleave(2)
    lengths = torch.full((len(clips),), features.shape[-1])
    model = build("vgg19")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    for _ in range(10):  # all 8 clips are right from the 6th step on
        loss = torch.nn.functional.cross_entropy(model.train()(features, lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model.eval()(features, lengths).argmax(1) == labels).float().mean()
    assert accuracy == 1.0, f"final loss {loss.item():.3f}"


@pytest.mark.parametrize("name", [*MODELS, "crnn-bidirectional"])
def test_a_clip_scores_the_same_alone_and_in_any_padded_batch(name):
    """A model's output for a clip depends on the clip's valid frames only: scored alone, and
    in a batch padded to a longer clip, with noise as padding so that any leak shows (clips
    shorter than a model's minimum input included)."""
    config = CONFIG
    if name == "crnn-bidirectional":
        config = CONFIG.override(options={"plugins.crnn": {
            **CONFIG.options["plugins.crnn"], "bidirectional": True}})
    model = build(name.split("-")[0], config).eval()
    lengths = [126, 61, 9, 97]
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(len(lengths), 1, BANDS, 180, generator=generator)
    with torch.no_grad():
        alone = torch.cat([model(batch[i:i + 1, ..., :n], torch.tensor([n]))
                           for i, n in enumerate(lengths)])
        together = model(batch, torch.tensor(lengths))
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("affine, bias", [(True, False), (False, True)])
def test_a_batch_norm_in_eval_folds_into_its_convolution_as_the_same_function(affine, bias):
    """conv_bn is bn(conv(x)): in eval with the statistics folded into the convolution (values
    and gradients, as when fine-tuning with frozen batch norms; under a hook or autocast, the
    two modules as they are), in training with batch statistics that update the running ones."""
    from esc50.plugins.models.layers import conv_bn

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=bias)
    bn = torch.nn.BatchNorm2d(5, affine=affine)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        if affine:
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 8, 10)
    parameters = [*conv.parameters(), *bn.parameters()]

    def value_and_gradients(fn):
        for p in parameters:
            p.grad = None
        out = fn(x)
        out.square().sum().backward()
        return out.detach(), [p.grad for p in parameters]

    bn.eval()
    folded, folded_grads = value_and_gradients(lambda x: conv_bn(conv, bn, x))
    plain, plain_grads = value_and_gradients(lambda x: bn(conv(x)))
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)  # rounded another way
    torch.testing.assert_close(folded_grads, plain_grads, rtol=1e-5, atol=1e-5)
    seen = []  # a hook on the convolution sees its own output, not one with the norm folded in
    hook = conv.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
    torch.testing.assert_close(conv_bn(conv, bn, x), plain)
    hook.remove()
    torch.testing.assert_close(seen, [conv(x).detach()])
    from esc50.plugins.models.layers import hooked
    assert not hooked(conv, bn)
    del conv._backward_pre_hooks  # a torch without one of the registries: as if hooked
    assert hooked(conv, bn)
    conv._backward_pre_hooks = {}
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):  # as trained: nothing folded
        assert torch.equal(conv_bn(conv, bn, x), bn(conv(x)))
    bn.train()
    running = bn.running_mean.clone()
    torch.testing.assert_close(conv_bn(conv, bn, x).mean((0, 2, 3)), torch.zeros(5) if not affine
                               else bn.bias.detach(), atol=1e-5, rtol=0)
    assert not torch.equal(bn.running_mean, running)


@pytest.mark.parametrize("name", ["rescnn", "kumar", "advanced"])
def test_a_hook_on_any_layer_or_conv_bn_block_sees_it_run_in_eval(name):
    """Scoring folds batch norms into convolutions and calls them directly; a forward hook on
    any layer or conv-BN block (for an activation map, say) still fires, and changes no logit."""
    model = build(name).eval()
    features, lengths = torch.randn(2, 1, BANDS, FRAMES), torch.tensor([FRAMES, FRAMES])

    def watched(module: torch.nn.Module) -> bool:
        children = list(module.children())
        return not children or (isinstance(module, torch.nn.Sequential) and len(children) > 1
                                and isinstance(children[0], torch.nn.Conv2d)
                                and isinstance(children[1], torch.nn.BatchNorm2d))
    with torch.no_grad():
        plain = model(features, lengths)
        for path, module in model.named_modules():
            if not path or not watched(module):
                continue
            seen = []
            hook = module.register_forward_hook(lambda m, args, out: seen.append(out))
            hooked = model(features, lengths)
            hook.remove()
            assert seen, f"the hook on {path} did not fire"
            torch.testing.assert_close(hooked, plain, rtol=1e-4, atol=1e-4)


def test_every_frame_is_read_as_filled_only_where_that_is_free_and_true():
    from esc50.plugins.models.layers import fills_every_frame

    assert fills_every_frame(torch.tensor([40, 40]), 40)
    assert not fills_every_frame(torch.tensor([40, 39]), 40)
    seen, full = [], torch.tensor([40])

    def traced(x):
        seen.append(fills_every_frame(full, 40))
        return x * 2
    torch.jit.trace(traced, torch.ones(1), check_trace=False)
    assert seen == [False]  # a traced graph keeps the masks: it may be given padded clips
    compiled = torch.compile(lambda x, n: x * 2 if fills_every_frame(n, 40) else x,
                             backend="eager", fullgraph=True)  # fullgraph: no read of n
    assert torch.equal(compiled(torch.ones(1), torch.tensor([40])), torch.ones(1))


def test_segment_pooling_leaves_out_padded_steps():
    from esc50.plugins.models.layers import masked_max, masked_mean

    scores = torch.tensor([[[1.0, 5.0, 9.0], [2.0, 0.0, -4.0]]])  # [B=1, K=2, S=3]
    assert masked_max(scores, torch.tensor([2])).tolist() == [[5.0, 2.0]]
    assert masked_mean(scores, torch.tensor([2])).tolist() == [[3.0, 1.0]]
    assert masked_max(scores, torch.tensor([3])).tolist() == [[9.0, 2.0]]


def test_lstm_reads_the_last_valid_frame():
    model = build("lstm").eval()
    features = torch.randn(1, 1, BANDS, 50)
    with torch.no_grad():
        at_30 = model(features, torch.tensor([30]))
        cut = model(features[..., :30], torch.tensor([30]))
    assert torch.allclose(at_30, cut, atol=1e-6)


def test_weights_option_loads_a_saved_state_dict(tmp_path, synthetic_data):
    from esc50.core.training.trainer import Trainer
    from tests.conftest import small_config

    source = build("kumar", small_config(synthetic_data))
    path = tmp_path / "kumar.pt"
    torch.save(source.state_dict(), path)
    config = small_config(synthetic_data, model="plugins.kumar", weights=str(path))
    trainer = Trainer(config, load_registry(), log=lambda _: None)
    for key, value in source.state_dict().items():
        assert torch.equal(trainer.state.model.state_dict()[key], value), key
    with pytest.raises(Esc50Error, match="kumar.pt does not fit the model"):
        Trainer(config.override(model="plugins.crnn"), load_registry(), log=lambda _: None)
    with pytest.raises(Esc50Error, match="weights file .*absent.pt does not exist"):
        Trainer(config.override(weights=str(tmp_path / "absent.pt")), load_registry())


def test_vgg19_pretrained_without_network_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # closed port: no traffic leaves
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    expected = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    config = CONFIG.override(**{"plugins.vgg19.pretrained": "true"})
    with pytest.raises(Esc50Error, match=f"not found at {expected} .*place it at"):
        build("vgg19", config)
    # Rebuilt to receive a checkpoint's weights (predict, evaluate, resume), it fetches nothing.
    rebuilt = load_registry().create("model", "plugins.vgg19", config, (1, 32, 126), restoring=True)
    assert rebuilt.net.classifier[6].out_features == len(FREQS)


@pytest.mark.slow
def test_vgg19_pretrained_sums_the_colour_filters_of_cached_weights(tmp_path, monkeypatch):
    from torchvision.models import vgg19

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    imagenet_like = vgg19(weights=None).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(imagenet_like, cache / "vgg19-dcbb9e9d.pth")
    model = build("vgg19", CONFIG.override(**{"plugins.vgg19.pretrained": "true"}))
    first = model.net.features[0].weight
    assert first.shape == (64, 1, 3, 3)
    assert torch.allclose(first, imagenet_like["features.0.weight"].sum(1, keepdim=True))
    assert torch.equal(model.net.features[2].weight, imagenet_like["features.2.weight"])
    assert model.net.classifier[6].out_features == len(FREQS)
