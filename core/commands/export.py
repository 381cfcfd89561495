"""`esc50 export`: a trained classifier as one file that runs without esc50, taking mono
waveforms at the run's sample rate and returning class probabilities, with the featurizer and
the normalization inside; beside it a JSON file with the class names, the sample rate and the
clip length.

Sources of each choice:
- TorchScript by tracing (``torch.jit.trace``): every built-in model's forward is the same for
  every clip of the run's length, so the trace is the model; ``torch.jit.load`` runs it with
  torch alone.
- ONNX through torch's exporter (``torch.onnx.export(..., dynamo=True)``, opset 18): the
  short-time Fourier transform becomes ONNX's ``STFT`` operator, so onnxruntime runs the whole
  pipeline from the waveform; the batch axis is dynamic, the time axis is the run's clip length.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
from pathlib import Path

import torch
from torch import nn

from esc50.core.training.classifier import Classifier
from esc50.core.errors import Esc50Error
from esc50.core.files.write import atomic_write, output_folder, write_text

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


class Probabilities(nn.Module):
    """``[B, samples]`` mono waveforms of the run's clip length in [-1, 1] -> ``[B, classes]``
    class probabilities (every sample of every clip is real audio: no padding)."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long, device=wav.device)
        return torch.softmax(self.classifier(wav, lengths), dim=1)


def suffix(fmt: str) -> str:
    """The file suffix of an export format; an unknown format is a one-line error."""
    if fmt not in FORMATS:
        raise Esc50Error(f"format {fmt!r} must be one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


def export_classifier(classifier: Classifier, fmt: str, path: Path, samples: int,
                      name: str) -> None:
    """Write ``classifier`` (for clips of ``samples`` samples) to ``path`` in ``fmt``; a model
    that cannot be exported is a one-line error naming it (``name``)."""
    output_folder(path.parent, "export folder")
    suffix(fmt)
    module = Probabilities(classifier.cpu()).eval()
    example = 0.1 * torch.randn(2, samples, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            content = _onnx_bytes(module, example) if fmt == "onnx" else \
                _torchscript_bytes(module, example)
    except Esc50Error:
        raise
    except Exception as exc:  # what the exporters raise varies with the construct they met
        reason = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())[:300]  # no colours
        raise Esc50Error(f"{name} cannot be exported to {fmt}: {type(exc).__name__}: "
                         f"{reason}") from None
    atomic_write(path, lambda handle: handle.write(content))


def _torchscript_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    traced = torch.jit.trace(module, (example,))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    return buffer.getvalue()


def _onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxscript")):
        raise Esc50Error("exporting to ONNX needs the onnx and onnxscript packages: "
                         "pip install 'esc50[export]'")
    program = torch.onnx.export(module, (example,), dynamo=True, input_names=["wav"],
                                output_names=["probabilities"],
                                dynamic_shapes={"wav": {0: torch.export.Dim("batch")}},
                                verbose=False)
    return program.model_proto.SerializeToString()


def write_side_file(path: Path, fmt: str, class_names: list[str], sample_rate: int,
                    samples: int, source: str) -> Path:
    """The JSON description beside an exported file; returns its path."""
    side = path.with_suffix(path.suffix + ".json")
    write_text(side, json.dumps({
        "format": fmt, "input": f"float32 [batch, {samples}]: mono waveforms in [-1, 1] at "
        f"{sample_rate} Hz ({samples / sample_rate:g} s)", "output": "float32 [batch, classes]: "
        "class probabilities", "class_names": class_names, "sample_rate": sample_rate,
        "clip_samples": samples, "exported_from": source}, indent=2) + "\n")
    return side
