"""3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, "Fast
algorithms for convolutional neural networks", CVPR 2016), for scoring on CPUs without AVX-512.

Each 4x4 block of outputs comes from the 6x6 block of inputs around it: the input block and the
3x3 kernel are each taken to a 6x6 "transformed" block by fixed matrices, multiplied element by
element (36 multiplications per input and output channel, where the direct convolution makes 144),
summed over input channels, and taken back to 4x4 outputs. Summed over channels, the 36
element-wise products are 36 matrix products, which is where the time goes; the three transforms
are small matrix products of their own. The result is the convolution's up to float32 rounding
(relative error about 1e-5).

Where it pays (``python benchmarks/winograd.py``; docs/analyze.md, "Speed"): with AVX2 alone the
direct convolutions already run at the rate of a large matrix product (benchmarks/conv_rate.py),
so only fewer multiplications can make them faster, and the deeper layers of the shipped model
take little more than half their time this way; without AVX (SSE4 only) every 3x3 convolution
from 32 input channels is 1.5-3.4x faster this way. With AVX-512 the direct convolutions are
twice as fast as with AVX2 and the transforms, which move memory rather than compute, eat the
gain; so :data:`ENABLED` is true where torch runs x86 kernels no wider than AVX2
(``ESC50_WINOGRAD=1`` forces it on, ``0`` off; on other CPUs it is unmeasured and off). It runs
only where :func:`applies` says: in eval without gradients (training and its memory plan are
untouched), float32 on the CPU, channels-last inputs (the layout esc50 runs convolutions in).
"""

from __future__ import annotations

import os
import platform

import torch
import torch.nn.functional as F
from torch import nn

SWITCH = "ESC50_WINOGRAD"  # "1": on, "0": off; unset: on where MIN_CHANNELS_BY_KERNELS says
# Input channels from which it pays, by the x86 kernels torch runs (benchmarks/winograd.py): with
# fewer, the transforms cost what the products save. Without AVX ("DEFAULT") the direct
# convolutions are slow enough for 32 to pay; with AVX-512 it is off (the two ways come out even).
MIN_CHANNELS_BY_KERNELS = {"DEFAULT": 32, "AVX2": 64}
KERNELS = torch.backends.cpu.get_cpu_capability()
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
ENABLED = os.environ.get(SWITCH, "1" if X86 and KERNELS in MIN_CHANNELS_BY_KERNELS else "0") == "1"
MIN_CHANNELS = MIN_CHANNELS_BY_KERNELS.get(KERNELS, MIN_CHANNELS_BY_KERNELS["AVX2"])
CHUNK_BYTES = 8 << 20  # transformed inputs at most this large at a time (memory; cache)
TILE, BLOCK = 4, 6  # outputs and inputs of one block along each axis

# The three transforms, exact in float64 (points 0, 1, -1, 2, -2 and infinity): input B^T,
# kernel G, output A^T; applied along both axes of a block (Kronecker products for the two at once).
INPUT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                      [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
                     dtype=torch.float64)
KERNEL = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
                      dtype=torch.float64)
OUTPUT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                       [0, 1, -1, 8, -8, 1]], dtype=torch.float64)
INPUT_1D = INPUT.float()
KERNEL_2D = torch.kron(KERNEL, KERNEL).float()  # [36, 9]
OUTPUT_2D = torch.kron(OUTPUT, OUTPUT).float()  # [16, 36]


def applies(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``conv`` on ``x`` runs here by :func:`conv3x3`: :data:`ENABLED`, without
    gradients, and :func:`suits`."""
    return ENABLED and not torch.is_grad_enabled() and suits(conv, x)


def suits(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``conv`` on ``x`` is one :func:`conv3x3` computes and pays for: a 3x3
    convolution of stride 1, padding 1, no dilation or groups, with at least
    :data:`MIN_CHANNELS` input channels, on a float32 channels-last CPU tensor."""
    return conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1) \
        and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros" \
        and conv.in_channels >= MIN_CHANNELS and x.device.type == "cpu" \
        and x.dtype == torch.float32 and x.dim() == 4 \
        and x.is_contiguous(memory_format=torch.channels_last)


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for [N, C, H, W] ``x`` in channels-last layout and
    [O, C, 3, 3] ``weight``, by F(4x4, 3x3); the output channels-last too. Blocks are taken a few
    columns (time steps) at a time, so that their transformed inputs stay under
    :data:`CHUNK_BYTES` whatever the batch."""
    n, channels, height, width = x.shape
    out_channels = weight.shape[0]
    rows, columns = -(-height // TILE), -(-width // TILE)  # blocks along each axis
    # [N, H, W, C] padded by one on top and left and to whole blocks on the bottom and right
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, TILE * columns + 1 - width,
                                           1, TILE * rows + 1 - height))
    kernels = (KERNEL_2D @ weight.reshape(out_channels * channels, 9).t())  # [36, O * C]
    kernels = kernels.view(BLOCK * BLOCK, out_channels, channels).transpose(1, 2)  # [36, C, O]
    out = x.new_empty(n, TILE * rows, TILE * columns, out_channels)
    blocks_out = out.view(n, rows, TILE, columns, TILE, out_channels)
    column_bytes = BLOCK * BLOCK * n * rows * max(channels, out_channels) * x.element_size()
    step = max(1, CHUNK_BYTES // column_bytes)  # columns of blocks at a time
    for first in range(0, columns, step):
        last = min(columns, first + step)
        inputs = padded[:, :, TILE * first:TILE * last + BLOCK - TILE]
        products = torch.bmm(transformed_blocks(inputs), kernels)  # [36, blocks, O]
        outputs = (OUTPUT_2D @ products.view(BLOCK * BLOCK, -1)).view(
            TILE, TILE, n, rows, last - first, out_channels).permute(2, 3, 0, 4, 1, 5)
        target = blocks_out[:, :, :, first:last]
        if bias is None:
            target.copy_(outputs)
        else:
            torch.add(outputs, bias, out=target)
    if out.shape[1] != height or out.shape[2] != width:
        out = out[:, :height, :width].contiguous()
    return out.permute(0, 3, 1, 2)


def transformed_blocks(padded: torch.Tensor) -> torch.Tensor:
    """[N, H, W, C] padded input -> [36, blocks, C]: each overlapping 6x6 block (every 4 rows and
    columns) taken by the input transform along rows, then along columns."""
    channels = padded.shape[-1]
    blocks = padded.unfold(1, BLOCK, TILE).unfold(2, BLOCK, TILE)  # [N, rows, cols, C, 6, 6]
    blocks = blocks.permute(4, 5, 0, 1, 2, 3).reshape(BLOCK, -1)  # [6 (row in block), ...]
    along_rows = (INPUT_1D @ blocks).view(BLOCK, BLOCK, -1)  # [6, 6 (column in block), ...]
    return torch.matmul(INPUT_1D, along_rows).view(BLOCK * BLOCK, -1, channels)
