"""`esc50 export`: a trained model (or an ensemble) as one file that runs without esc50.

The file takes a mono waveform of any length (one shorter than a window is zero-padded to one, as
prediction pads it; at least the featurizer's analysis window) (float32 ``[samples]`` in
[-1, 1] at the run's sample rate) and returns the class probabilities of every window (the run's
clip length, every ``hop`` samples, one more aligned with the end when the last does not reach
it: the windows of ``esc50 predict``) and their mean. Featurizer and normalization are inside;
an ensemble's file averages its models' probabilities. Beside it a JSON file names the classes,
the sample rate, the window and the hop.

Sources of each choice:
- ONNX through torch's exporter (``torch.onnx.export(..., dynamo=True)``): ``torch.stft``
  becomes its frames times the window through a DFT of two small matrix products
  (commands/export_stft.py), so onnxruntime runs the whole pipeline from the waveform; the
  length is a dynamic dimension, the windows are cut inside the graph (:func:`windows_of`, plus
  the end-aligned window kept only when the grid misses the end).
- TorchScript: the scoring of a batch of windows is traced (``torch.jit.trace``: every built-in
  model's forward is the same for every window), the cutting of windows around it is scripted
  (``torch.jit.script``: it depends on the length); ``torch.jit.load`` runs it with torch alone.
- int8 (``--quantize int8``, ONNX; commands/export_int8.py): onnxruntime's static quantization
  (QDQ format, weights int8 per channel, activations uint8, MinMax calibration; Conv, MatMul and
  Gemm, and the Add and Relu nodes between them), calibrated on training clips only: never on
  clips the model is scored on. The model's first layer stays float32: quantizing the
  normalized features it reads took the laptop recipe's fold-1 model from 82.0 % to 28.5 % on
  fold 1, and leaving that one layer out gave 82.2 % (docs/export.md). The int8 file holds two
  graphs sharing their weights: one traced for whole windows, without masks, for a recording of
  at least one window, and this module's general one for a shorter recording.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from esc50.commands.export_int8 import by_length, calibration_clips, quantized
from esc50.commands.members import LoadedRun
from esc50.commands.predict import default_hop
from esc50.core.data.location import resolve_data_dir
from esc50.core.errors import Esc50Error
from esc50.core.files.write import atomic_write, output_folder, write_text
from esc50.core.plugin_api.contracts import tracing_whole_clips
from esc50.core.plugin_api.registry import Registry
from esc50.core.results.folder import refuse_run_file
from esc50.core.training.classifier import Classifier
from esc50.core.training.scoring import Member, Scoring, mean_probabilities

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
QUANTIZED = ("int8",)


class WindowScores(nn.Module):
    """``[windows, window]`` waveforms -> ``[windows, classes]`` probabilities: one
    classifier's, or the mean of an ensemble's (every sample of every window is audio), as
    prediction computes them (:func:`mean_probabilities`), in float32."""

    def __init__(self, classifiers: list[Classifier]) -> None:
        super().__init__()
        self.classifiers = nn.ModuleList(c.eval() for c in classifiers)
        self.members = [Member(c, Scoring(bf16=False)) for c in self.classifiers]

    def forward(self, windows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``lengths``: the audio samples of each window (fewer than the window in the one
        window of a recording shorter than it, zero-padded as prediction pads it)."""
        return mean_probabilities(self.members, windows, lengths)


class Windowed(nn.Module):
    """A waveform ``[samples]`` (a shorter one than ``window`` is zero-padded to one window
    whose valid length is its own, as prediction pads it) -> (``[windows, classes]``,
    ``[classes]``):
    the probabilities of its windows (every ``hop`` samples, and one aligned with the end when
    the last does not reach it) and their mean."""

    def __init__(self, scores: nn.Module, window: int, hop: int) -> None:
        super().__init__()
        self.scores, self.window, self.hop = scores, window, hop

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        audio = wav.shape[0]
        valid = torch.full((1,), audio, dtype=torch.long, device=wav.device).clamp(
            max=self.window)
        wav = torch.nn.functional.pad(wav, (0, max(self.window - audio, 0)))  # as predict pads
        samples = wav.shape[0]
        grid = windows_of(wav, self.window, self.hop)
        covered = (grid.shape[0] - 1) * self.hop + self.window
        # the end-aligned window is scored only where the grid stops short of the end (a clip of
        # one window is one window to score, not two): a count the ONNX exporter keeps symbolic
        # (sym_min), told that it is never 0 (which the featurizer's padding asks and it cannot
        # prove), and TorchScript computes on integers
        if torch.jit.is_scripting():
            extra = min(1, samples - covered)
        else:
            extra = torch.sym_min(1, samples - covered)
            torch._check(grid.shape[0] + extra != 0)
        windows = torch.cat([grid, wav[samples - self.window:].unsqueeze(0)]).narrow(
            0, 0, grid.shape[0] + extra)
        probabilities = self.scores(windows, valid.expand(windows.shape[0]))
        return probabilities, probabilities.mean(0)


def windows_of(wav: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """``[samples]`` -> ``[windows, window]``: the windows every ``hop`` samples that fit. Where
    ``hop`` divides ``window`` (the default half-window hop does), each window is ``window /
    hop`` neighbouring blocks of ``hop`` samples side by side, which the ONNX file computes
    from slices; otherwise ``unfold``, which it computes with a table of every window's sample
    indices (0.8 MiB for a 5 s window at 22.05 kHz)."""
    if window % hop:
        return wav.unfold(0, window, hop)
    count = (wav.shape[0] - window) // hop + 1
    per_window = window // hop
    blocks = wav[:(count + per_window - 1) * hop].reshape(-1, hop)
    return torch.cat([blocks[j:j + count] for j in range(per_window)], dim=1)


def suffix(fmt: str) -> str:
    """The file suffix of an export format; an unknown format is a one-line error."""
    if fmt not in FORMATS:
        raise Esc50Error(f"format {fmt!r} must be one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


def default_name(fmt: str, quantize: str | None = None, stem: str = "model") -> str:
    return f"{stem}{'.' + quantize if quantize else ''}{suffix(fmt)}"


def export_runs(runs: list[LoadedRun], fmt: str, path: Path, registry: Registry,
                quantize: str | None = None, data: str | None = None,
                description: str = "", hop: int | None = None,
                log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """Write ``runs`` (one model, or an ensemble) to ``path`` in ``fmt`` (``quantize="int8"``:
    ONNX quantized, calibrated on training clips of ``data``) and its JSON side file; a model
    that cannot be exported is a one-line error naming it, and so is an output that would
    replace a file of a run folder, checked with everything else before any work. Returns both
    paths."""
    suffix(fmt)
    if quantize is not None and (quantize not in QUANTIZED or fmt != "onnx"):
        raise Esc50Error(f"--quantize {quantize}: only int8, and only for --format onnx")
    if quantize and importlib.util.find_spec("onnxruntime") is None:
        raise Esc50Error("--quantize int8 needs onnxruntime (its calibration runs the model): "
                         "pip install onnxruntime")
    for written in (path, side_file(path)):
        refuse_run_file(written, "--out")
    output_folder(path.parent, "export folder")
    config = runs[0].config
    window = config.length_wav
    hop = hop or default_hop(window)
    if not 1 <= hop <= window:
        raise Esc50Error(f"--hop of {hop} samples must be between 1 sample and one window "
                         f"({window} samples)")
    name = " + ".join(sorted({run.config.model for run in runs}))
    classifiers = [run.member.classifier for run in runs]
    content = exported_bytes(classifiers, fmt, window, hop, name)
    calibration = None
    if quantize:
        clips = calibration_clips(runs, registry, data, log)
        with tracing_whole_clips():  # the graph for recordings of at least one window
            whole = exported_bytes(classifiers, fmt, window, hop, name)
        content = by_length(quantized(whole, clips), quantized(content, clips), window)
        calibration = (f"{len(clips)} clips the model(s) trained on (their content checked "
                       f"against the sha256 the runs recorded), from "
                       f"{resolve_data_dir(data or config.data)}")
    atomic_write(path, lambda handle: handle.write(content))
    side = write_side_file(path, fmt, runs, window, hop, description, quantize, calibration)
    return path, side


def exported_bytes(classifiers: list[Classifier], fmt: str, window: int, hop: int,
                   name: str) -> bytes:
    """The file content of ``classifiers`` (one, or an ensemble's) in ``fmt`` (see the module
    docstring); a model that cannot be exported is a one-line error naming it (``name``)."""
    suffix(fmt)
    scores = WindowScores([c.cpu() for c in classifiers]).eval()
    example = 0.1 * torch.randn(window + hop + hop // 2,
                                generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' notes on their own internals
            if fmt == "onnx":
                return _onnx_bytes(Windowed(scores, window, hop).eval(), example,
                                   max(c.featurizer.min_samples for c in classifiers))
            return _torchscript_bytes(scores, example[:window], window, hop)
    except Esc50Error:
        raise
    except Exception as exc:  # what the exporters raise varies with the construct they met
        reason = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())[:300]  # no colours
        raise Esc50Error(f"{name} cannot be exported to {fmt}: {type(exc).__name__}: "
                         f"{reason}") from None


def _torchscript_bytes(scores: WindowScores, example: torch.Tensor, window: int,
                       hop: int) -> bytes:
    windows = example.unsqueeze(0).repeat(2, 1)
    traced = torch.jit.trace(scores, (windows, torch.full((2,), window, dtype=torch.long)))
    scripted = torch.jit.script(Windowed(traced, window, hop).eval())
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def _onnx_bytes(module: nn.Module, example: torch.Tensor, shortest: int) -> bytes:
    if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxscript")):
        raise Esc50Error("exporting to ONNX needs the onnx and onnxscript packages: "
                         "pip install 'esc50[export]'")
    from esc50.commands.export_stft import TRANSLATIONS  # needs onnxscript

    program = torch.onnx.export(module, (example,), dynamo=True, input_names=["wav"],
                                output_names=["window_probabilities", "mean_probabilities"],
                                dynamic_shapes={"wav": {0: torch.export.Dim(
                                    "samples", min=max(shortest, 2))}},
                                custom_translation_table=TRANSLATIONS,
                                verbose=False)
    return program.model_proto.SerializeToString()


BF16_NOTE = ("; the model was trained and is scored by esc50 under bf16 autocast (on a CPU "
             "with bf16 instructions, or a GPU): this file computes in float32, so its "
             "probabilities differ from esc50 predict's there by up to a few hundredths and "
             "its accuracy by a few clips in a fold (docs/export.md)")


def side_file(path: Path) -> Path:
    """The JSON description written beside an exported file."""
    return path.with_name(path.name + ".json")


def write_side_file(path: Path, fmt: str, runs: list[LoadedRun], window: int, hop: int,
                    source: str, quantize: str | None, calibration: str | None) -> Path:
    """The JSON description beside an exported file; returns its path."""
    config = runs[0].config
    rate = config.sample_rate
    side = side_file(path)
    bf16 = any(run.member.scoring.bf16 for run in runs)
    write_text(side, json.dumps({
        "format": fmt, "quantized": quantize, "calibration": calibration,
        "numerics": "float32" + (BF16_NOTE if bf16 else ""),
        "input": f"wav: float32 [samples]: a mono waveform in [-1, 1] at {rate} Hz of any "
                 f"length; one shorter than a window ({window} samples, {window / rate:g} s) is "
                 "zero-padded to one, as esc50 predict pads it",
        "outputs": {"window_probabilities": "float32 [windows, classes]: each window's class "
                    f"probabilities (windows of {window} samples every {hop} samples, and one "
                    "aligned with the end when the last does not reach it)",
                    "mean_probabilities": "float32 [classes]: their mean"},
        "class_names": runs[0].state["class_names"], "sample_rate": rate,
        "window_samples": window, "hop_samples": hop, "models": len(runs),
        "exported_from": source}, indent=2) + "\n")
    return side
