"""int8 for the shared pass of ``esc50 analyze``, measured and not adopted: the residual CNN's
step network as it scores a shared pass (batch norms folded into the convolutions, no padding
masks), copied without branches so that FX can trace it, quantized to int8 by torch's FX graph
mode (per-channel weights, activations calibrated on clips of the run's training folds, the stem
left in float32) on each of torch's two int8 engines, against the network as it is, in the same
run: milliseconds per 45-second span, and the windows of a held-out soundscape (as
benchmarks/shared_steps.py scores them).

    python benchmarks/int8_steps.py RUN --data ESC-50 [--fold 1] [--clips 400] [--calibration 200]

RUN is a ``rescnn`` run whose validation fold is ``--fold`` (a fold of ``esc50 cv``), scored in
float32 here (``ESC50_CPU_BF16=0``) whatever the CPU has. To keep torch to AVX2, run it under
the variables ``benchmarks/analyze.py --avx2`` sets: oneDNN honours ``ONEDNN_MAX_CPU_ISA``,
fbgemm does not (it picks its kernels from the CPU itself, so on a CPU with AVX-512 VNNI its
figures are VNNI's whatever the variables say).
"""

from __future__ import annotations

import copy
import os
import csv
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import esc50
from esc50.core.data.audio import load_clip
from esc50.core.training.device import NO_BF16_VARIABLE
# benchmarks/, the folder this runs from:
from shared_steps import right, soundscape, soundscape_arguments, top_classes
from timing import median_seconds

SPAN_SECONDS = 45  # about one shared pass: 16 windows of 5 s every 2.5 s


class FoldedSteps(nn.Module):
    """A ResCNN's ``step_embeddings`` for inputs without padding and long enough to pool before
    every stage, as the model computes them there (batch norms folded, no masks), with the
    folded convolutions as modules and no branches, so that FX can trace and quantize it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model = copy.deepcopy(model).eval()
        self.stem = nn.Sequential(fuse_conv_bn_eval(model.stem[0], model.stem[1]), nn.ReLU())
        self.pool = model.pool
        self.stages = model.stages
        for block in (block for stage in self.stages for block in stage):
            block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
            block.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
            block.bn1 = block.bn2 = nn.Identity()
            if isinstance(block.shortcut, nn.Sequential):
                block.shortcut = fuse_conv_bn_eval(block.shortcut[0], block.shortcut[1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.stem(features)
        for stage in self.stages:
            x = self.pool(x)
            for block in stage:
                x = torch.relu(block.conv2(torch.relu(block.conv1(x))) + block.shortcut(x))
        return x.mean(dim=2)


def quantized(network: nn.Module, engine: str, calibration: torch.Tensor) -> nn.Module:
    """``network`` in int8 for ``engine``, its activations calibrated on ``calibration``."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = engine
    mapping = get_default_qconfig_mapping(engine).set_module_name("stem", None)
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated (moved to torchao)
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(network), mapping, (calibration[..., :256],))
        prepared(calibration)
        return convert_fx(prepared)


def model_input(model: esc50.Model, audio: torch.Tensor) -> torch.Tensor:
    """The model's input features of mono ``audio`` as one span."""
    classifier = model.members[0].classifier
    features, _ = classifier.features(audio[None], torch.tensor([audio.shape[0]]))
    return classifier.model_input(features)


def main() -> None:
    os.environ[NO_BF16_VARIABLE] = "0"  # float32 throughout: int8 quantizes float32 tensors
    parser = soundscape_arguments(__doc__.split("\n")[0])
    parser.add_argument("--calibration", type=int, default=200,
                        help="training-fold clips the activations are calibrated on")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = esc50.load(args.run)
    network = model.members[0].classifier.model
    root = Path(args.data)
    with (root / "meta" / "esc50.csv").open() as handle:
        training = [r for r in csv.DictReader(handle) if int(r["fold"]) != args.fold]
    step = max(len(training) // args.calibration, 1)
    with torch.no_grad():
        calibration = model_input(model, torch.cat([
            load_clip(root / "audio" / r["filename"], model.sample_rate,
                      model.config.length_wav)[0] for r in training[::step]]))
        audio, labels = soundscape(model, root, args.fold, args.clips)
        span = model_input(model, audio[:SPAN_SECONDS * model.sample_rate])
        frames = torch.tensor([span.shape[-1]])
        folded = FoldedSteps(network)
        steps = {"float32, as the model is": None,
                 **{f"int8 ({engine})": quantized(folded, engine, calibration)
                    for engine in ("fbgemm", "onednn")}}
        print(f"{args.run}: a soundscape of {len(labels)} fold-{args.fold} clips, "
              f"{len(training[::step])} clips of the other folds to calibrate; "
              f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}\n")
        print("| step network | ms per 45 s span | soundscape seconds | aligned windows right "
              "| straddling windows right | same top class as float32 |")
        print("|---|---:|---:|---:|---:|---:|")
        reference = None
        for name, steps_network in steps.items():
            if steps_network is None:
                ms = 1000 * median_seconds(lambda: network.step_embeddings(span, frames))
            else:
                ms = 1000 * median_seconds(lambda: steps_network(span))
                pools = 2 ** len(network.stages)
                network.step_embeddings = lambda features, lengths, net=steps_network: (
                    net(features), (lengths.clamp(1, features.shape[-1]) // pools).clamp(min=1))
            started = time.perf_counter()
            top = top_classes(model, audio, share_steps=True)
            seconds = time.perf_counter() - started
            network.__dict__.pop("step_embeddings", None)  # the model's own again
            reference = top if reference is None else reference
            aligned, straddling = right(top, labels)
            print(f"| {name} | {ms:.1f} | {seconds:.2f} | {aligned} | {straddling} "
                  f"| {100 * np.mean(top == reference):.1f} % |", flush=True)


if __name__ == "__main__":
    main()
