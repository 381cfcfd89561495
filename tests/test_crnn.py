import pytest
import torch

from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from tests.conftest import esc50_config


def build(config=None, shape=(1, 64, 862)):
    return load_registry().create("model", "plugins.crnn", config or esc50_config(), shape)


@pytest.mark.parametrize("frames", [15, 100, 862, 2000])
def test_output_shape_for_any_length(frames):
    model = build(shape=(1, 64, frames))
    logits = model(torch.randn(3, 1, 64, frames), torch.full((3,), frames))
    assert logits.shape == (3, 50)


def test_gradients_reach_every_parameter():
    model = build()
    model(torch.randn(2, 1, 64, 300), torch.tensor([300, 200])).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_padded_frames_do_not_change_the_prediction():
    model = build().eval()
    clip = torch.randn(1, 1, 64, 300)
    padded = torch.cat([clip, torch.randn(1, 1, 64, 200)], dim=-1)
    with torch.no_grad():
        alone = model(clip, torch.tensor([300]))
        in_batch = model(padded, torch.tensor([300]))
    assert torch.allclose(alone, in_batch, atol=1e-5)


def test_bidirectional_and_layers_are_honoured():
    config = esc50_config(**{"plugins.crnn.bidirectional": "true",
                                      "plugins.crnn.gru_num_layers": "3"},
                                   options={"plugins.crnn": {"hidden_size": 32}})
    model = build(config, shape=(1, 40, 200))
    assert model.gru.bidirectional and model.gru.num_layers == 3
    assert model.classifier.in_features == 64
    assert model(torch.randn(2, 1, 40, 200), torch.tensor([200, 150])).shape == (2, 50)


def test_too_few_bins_for_the_kernel_is_a_clear_error():
    with pytest.raises(Esc50Error, match="model plugins.crnn: 4 feature bins are fewer than"):
        build(shape=(1, 4, 100))
