"""How close the convolutions of a shared pass run to the CPU's arithmetic rate: each
convolution of the shipped model's pass over 32.5 s of audio (the span of one 30 s block of
``esc50 analyze``), timed alone on its own input, in billions of floating-point operations a
second, against one large matrix product (2048 x 2048, float32) on the same cores in the same
run, the rate that BLAS libraries get close to the CPU's peak with.

    python benchmarks/conv_rate.py [MODEL]

MODEL is a run folder, a cross-validation folder or a trained model's name (default
``esc50-rescnn``). It runs in float32 (``ESC50_CPU_BF16=0``); run it under the variables of
``benchmarks/analyze.py --avx2`` to keep torch to AVX2 instructions.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from torch import nn

import esc50
from esc50.core.training.device import NO_BF16_VARIABLE
from timing import median_seconds  # benchmarks/, the folder this script runs from

SPAN_SECONDS = 32.5  # a 30 s block's windows: 12 of 5 s every 2.5 s
MATRIX = 2048


def pass_convolutions(model: esc50.Model, seconds: float = SPAN_SECONDS, clips: int = 1
                      ) -> list[tuple[nn.Conv2d, torch.Tensor, int]]:
    """Each convolution of one pass over ``clips`` of ``seconds`` of noise (by default one shared
    pass of ``SPAN_SECONDS``), with its input and the number of values it outputs."""
    classifier = model.members[0].classifier
    audio = 0.1 * torch.randn(clips, int(seconds * model.sample_rate))
    features, frames = classifier.features(audio, torch.full((clips,), audio.shape[1]))
    seen: list[tuple[nn.Conv2d, torch.Tensor, int]] = []
    convolutions = [m for m in classifier.model.modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(lambda m, args, out: seen.append((m, args[0], out.numel())))
               for m in convolutions]
    classifier.model.step_embeddings(classifier.model_input(features), frames)
    for handle in handles:
        handle.remove()
    return seen


def main() -> None:
    os.environ[NO_BF16_VARIABLE] = "0"
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="esc50-rescnn")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = esc50.load(args.model, warn=lambda _: None)
    a, b = torch.randn(MATRIX, MATRIX), torch.randn(MATRIX, MATRIX)
    with torch.no_grad():
        reference = 2 * MATRIX ** 3 / median_seconds(lambda: a @ b) / 1e9
        print(f"{args.model}, one pass over {SPAN_SECONDS} s; {torch.get_num_threads()} threads, "
              f"{torch.backends.cpu.get_cpu_capability()}, float32\n")
        print("| convolution | input | ms | GFLOP/s | of the matrix product's rate |")
        print("|---|---|---:|---:|---:|")
        print(f"| (reference) matrix product {MATRIX} x {MATRIX} | | | {reference:.0f} | 100 % |")
        total_ms = total_flops = 0.0
        for conv, x, outputs in pass_convolutions(model):
            seconds = median_seconds(lambda: F.conv2d(x, conv.weight, conv.bias, conv.stride,
                                                      conv.padding, conv.dilation, conv.groups))
            flops = 2 * outputs * conv.weight[0].numel()  # a multiply and an add per weight
            total_ms, total_flops = total_ms + 1000 * seconds, total_flops + flops
            rate = flops / seconds / 1e9
            kernel = "x".join(map(str, conv.kernel_size))
            print(f"| {conv.in_channels} -> {conv.out_channels}, {kernel} | "
                  f"{x.shape[-2]} x {x.shape[-1]} | {1000 * seconds:.2f} | {rate:.0f} | "
                  f"{100 * rate / reference:.0f} % |")
        rate = total_flops / total_ms / 1e6
        print(f"| all | | {total_ms:.1f} | {rate:.0f} | {100 * rate / reference:.0f} % |")


if __name__ == "__main__":
    main()
