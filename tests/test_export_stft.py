"""The exported ONNX file computes ``torch.stft`` as frames through two small DFT products
(commands/export_stft.py) and cuts its windows from slices (commands/export.py windows_of):
the same numbers as torch for every setting torch.stft takes, and no STFT operator or index
table in the file."""

import numpy as np
import pytest
import torch
from torch import nn

from esc50.commands.export import exported_bytes, windows_of
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.classifier import build_classifier
from tests.conftest import small_config

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


class Stft(nn.Module):
    """``torch.stft`` with fixed settings, its (real, imaginary) pairs out."""

    def __init__(self, **settings) -> None:
        super().__init__()
        self.settings = settings

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.view_as_real(torch.stft(wav, return_complex=True, **self.settings))


def exported(module: nn.Module, example: torch.Tensor) -> onnxruntime.InferenceSession:
    """``module`` through torch's ONNX exporter with esc50's translations, the last dimension
    dynamic."""
    from esc50.commands.export_stft import TRANSLATIONS

    shapes = {"wav": {example.dim() - 1: torch.export.Dim("samples", min=256)}}
    program = torch.onnx.export(module, (example,), dynamo=True, input_names=["wav"],
                                dynamic_shapes=shapes, custom_translation_table=TRANSLATIONS,
                                verbose=False)
    graph = program.model_proto
    assert not {"STFT", "DFT"} & {node.op_type for node in graph.graph.node}
    return onnxruntime.InferenceSession(graph.SerializeToString())


@pytest.mark.parametrize("settings", [
    dict(n_fft=64, hop_length=16, window=torch.hann_window(64)),      # frames from blocks
    dict(n_fft=64, hop_length=24, window=torch.hann_window(64)),      # frames gathered
    dict(n_fft=64, hop_length=16, win_length=40, window=torch.hamming_window(40)),
    dict(n_fft=64, hop_length=32, win_length=48),                     # a rectangle in the middle
    dict(n_fft=60, hop_length=15, window=torch.hann_window(60), center=False),  # 6 x 10
    dict(n_fft=61, hop_length=20, window=torch.hann_window(61)),      # a prime: one product
    dict(n_fft=64, hop_length=16, window=torch.hann_window(64), normalized=True),
    dict(n_fft=64, hop_length=16, window=torch.hann_window(64), onesided=False),
    dict(n_fft=64, window=torch.hann_window(64), pad_mode="constant"),  # hop n_fft / 4
], ids=["blocks", "gathered", "short-window", "rectangle", "6x10", "prime", "normalized",
        "two-sided", "default-hop"])
@pytest.mark.parametrize("batch", [True, False], ids=["batch", "one"])
def test_the_exported_stft_equals_torch_stft(settings, batch):
    module = Stft(**settings).eval()
    generator = torch.Generator().manual_seed(0)
    shape = (3, 1000) if batch else (1000,)
    session = exported(module, torch.randn(*shape, generator=generator))
    for samples in (1000, 777, 300):  # the exported length, and two others
        wav = torch.randn(*shape[:-1], samples, generator=generator)
        expected = module(wav).numpy()
        got = session.run(None, {"wav": wav.numpy()})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=2e-4 * np.abs(expected).max())


@pytest.mark.parametrize("window, hop", [(8000, 4000), (8000, 2000), (8000, 3000), (8000, 8000)])
def test_windows_are_the_unfold_windows(window, hop):
    wav = torch.randn(int(3.7 * window), generator=torch.Generator().manual_seed(2))
    for samples in (window, window + hop - 1, window + hop, len(wav)):
        np.testing.assert_array_equal(windows_of(wav[:samples], window, hop).numpy(),
                                      wav[:samples].unfold(0, window, hop).numpy())


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_an_exported_log_mel_file_has_no_stft_operator_and_no_index_table(tmp_path):
    config = small_config(tmp_path).override(model="plugins.crnn")
    classifier = build_classifier(config, load_registry())
    window = config.length_wav
    graph = onnx.load_from_string(exported_bytes([classifier], "onnx", window, window // 2,
                                                 "plugins.crnn")).graph
    assert not {"STFT", "DFT"} & {node.op_type for node in graph.node}
    assert "MatMul" in {node.op_type for node in graph.node}
    # the sample indices of a window (what unfold would hold) are nowhere in the file
    largest = max(int(np.prod(t.dims)) for t in graph.initializer
                  if t.data_type == onnx.TensorProto.INT64)
    assert largest < window
