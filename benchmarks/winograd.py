"""Winograd's F(4x4, 3x3) against the direct convolution: each 3x3 convolution of the shipped
model, timed both ways on its own input in the same run, in float32 with channels-last inputs as
esc50 scores: over one shared pass of ``esc50 analyze`` (32.5 s of audio) and over a batch of
5 s clips as ``esc50 evaluate`` scores them.

    python benchmarks/winograd.py [MODEL] [--clips 32]

MODEL is a run folder, a cross-validation folder or a trained model's name (default
``esc50-rescnn``). Run it under the variables of ``benchmarks/analyze.py --avx2`` (or ``--sse4``)
to keep torch to AVX2 (or SSE4) instructions, where esc50 turns Winograd on by itself; it times
both ways whatever the CPU. The last column says which way esc50 takes with Winograd on, from
the input channels it needs on the kernels torch runs here.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F

import esc50
from esc50.core.training.device import NO_BF16_VARIABLE
from esc50.plugins.models import winograd
from conv_rate import SPAN_SECONDS, pass_convolutions  # benchmarks/, the folder it runs from
from timing import median_seconds  # benchmarks/, the folder this script runs from

CLIP_SECONDS = 5.0


def main() -> None:
    os.environ[NO_BF16_VARIABLE] = "0"
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="esc50-rescnn")
    parser.add_argument("--clips", type=int, default=32, help="clips in the batch")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = esc50.load(args.model, warn=lambda _: None)
    print(f"{args.model}; {torch.get_num_threads()} threads, "
          f"{torch.backends.cpu.get_cpu_capability()}, float32; Winograd on here: "
          f"{winograd.ENABLED} (the last column: where it is on)\n")
    print("| input | convolution | [C, F, T] | direct ms | Winograd ms | speed-up | "
          "esc50 uses |")
    print("|---|---|---|---:|---:|---:|---|")
    totals = {}
    for name, seconds, batch in ((f"one pass ({SPAN_SECONDS} s)", SPAN_SECONDS, 1),
                                 (f"{args.clips} clips of {CLIP_SECONDS:g} s", CLIP_SECONDS,
                                  args.clips)):
        direct_total = chosen_total = 0.0
        with torch.no_grad():
            convolutions = pass_convolutions(model, seconds, batch)
        for conv, x, _ in convolutions:
            if conv.kernel_size != (3, 3):
                continue
            weight = conv.weight.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                direct = median_seconds(lambda: F.conv2d(x, weight, conv.bias, padding=1))
                fast = median_seconds(lambda: winograd.conv3x3(x, weight, conv.bias))
            uses = winograd.suits(conv, x)  # where Winograd is on
            direct_total += direct
            chosen_total += fast if uses else direct
            print(f"| {name} | {conv.in_channels} -> {conv.out_channels} | "
                  f"{list(x.shape[1:])} | {1000 * direct:.2f} | {1000 * fast:.2f} | "
                  f"{direct / fast:.2f}x | {'Winograd' if uses else 'direct'} |")
        totals[name] = direct_total, chosen_total
    for name, (direct, chosen) in totals.items():
        print(f"\n{name}: all 3x3 convolutions {1000 * direct:.1f} ms direct, "
              f"{1000 * chosen:.1f} ms as esc50 chooses with Winograd on "
              f"({direct / chosen:.2f}x)")


if __name__ == "__main__":
    main()
