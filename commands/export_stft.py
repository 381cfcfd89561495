"""``torch.stft`` in an exported ONNX file as two small matrix products, instead of ONNX's
``STFT`` operator.

onnxruntime's ``STFT`` computes one frame after another (6.5 ms of a 16 ms call for the 216
frames of a 5 s window at 22.05 kHz, on 2 CPU cores); its matrix product is fast. The frames
(cut from slices where the hop divides ``n_fft``) times the window go through an ``n_fft``-point
DFT split as ``p x q`` points (32 x 32 for 1024: Cooley and Tukey's index mapping, "An algorithm
for the machine calculation of complex Fourier series", 1965): a p-point DFT as one product,
then, for each of its p outputs, the twiddle factors and the q-point DFT as one batched product.
That is about ``4 (p + q)`` operations a sample (256 for 1024 points) instead of ``2 n_fft``
(2048) for one product with a full Fourier basis (docs/export.md; ``benchmarks/export.py``
times a file with ONNX's operator beside it).
The two products' matrices are stored in the file (``2 p^2 + 4 p q k2s`` values: 0.27 MiB for
1024 points). The result is torch's: ``[batch?, bins, frames, 2]`` (real, imaginary), scaled by
``n_fft ** -0.5`` when ``normalized``, the window zero-padded to ``n_fft`` in the middle as
``torch.stft`` pads it."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import onnx
import torch
from onnxscript import opset18 as op

Value = Any  # an onnxscript value in the exporter's graph


def _int(value: int) -> Value:
    """An int64 scalar."""
    return op.Constant(value_int=value)


def _ints(*values: int) -> Value:
    """A 1-d int64 tensor."""
    return op.Constant(value_ints=list(values))


def _floats(values: np.ndarray) -> Value:
    """A float32 tensor of ``values``, stored in the file."""
    return op.Constant(value=onnx.numpy_helper.from_array(values))


def centred_window(window: Optional[Value], win_length: Optional[int], n_fft: int) -> Value:
    """``window`` (a rectangle of ``win_length`` samples where None) zero-padded to ``n_fft``
    samples with the extra split around it, as ``torch.stft`` pads it."""
    if window is None:
        length = win_length or n_fft
        window = op.Expand(op.Constant(value_floats=[1.0]), _ints(length))
    else:
        length = window.shape[0]
    left = (n_fft - length) // 2
    if length == n_fft:
        return window
    return op.Pad(window, _ints(left, n_fft - length - left))


def factors(n: int) -> tuple[int, int]:
    """``(p, q)`` with ``p * q == n`` and ``p`` the largest divisor of ``n`` not above its
    square root (32 x 32 for 1024; 1 x n for a prime)."""
    p = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return p, n // p


def dft_stages(n_fft: int, bins: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The two products of an ``n_fft``-point DFT split as ``p x q`` (:func:`factors`; sample
    ``n = q * i + j``, bin ``k = k1 + p * k2``), float32:

    - ``first`` ``[2p, p]``: the p-point DFT over ``i`` (real rows, then imaginary rows);
    - ``second`` ``[p, 2q, 2 * k2s]``: for each ``k1``, the sum over ``j`` of the first stage's
      output times ``scale * exp(-2 pi i j (k1 + p k2) / n_fft)``, complex as real blocks
      ``[[re, im], [-im, re]]``, for the ``k2s`` values of ``k2`` that reach ``bins`` bins.
    """
    p, q = factors(n_fft)
    k1 = np.arange(p)
    first = np.exp(-2j * np.pi * np.outer(k1, np.arange(p)) / p)
    k2 = np.arange(-(-bins // p))
    turns = (np.arange(q)[None, :, None] * (k1[:, None, None] + p * k2[None, None, :])) % n_fft
    twiddled = scale * np.exp(-2j * np.pi * turns / n_fft)  # [k1, j, k2]
    second = np.concatenate([np.concatenate([twiddled.real, twiddled.imag], axis=2),
                             np.concatenate([-twiddled.imag, twiddled.real], axis=2)], axis=1)
    return (np.concatenate([first.real, first.imag]).astype(np.float32),
            second.astype(np.float32))


def frames_of(signal: Value, n_fft: int, hop: int) -> Value:
    """``[batch?, samples]`` -> ``[batch?, frames, n_fft]``: the frames every ``hop`` samples
    that fit. Where ``hop`` divides ``n_fft`` (the report's 256 and the laptop recipe's 512 do
    for 1024; PANNs' 320 does not), the signal is cut into blocks of ``hop`` samples and each
    frame is ``n_fft / hop`` neighbouring blocks side by side (copies); otherwise each frame's
    samples are gathered by index."""
    count = op.Add(op.Div(op.Sub(op.Shape(signal, start=-1), _ints(n_fft)), _ints(hop)), _ints(1))
    if n_fft % hop == 0:
        per_frame = n_fft // hop
        used = op.Mul(op.Add(count, _ints(per_frame - 1)), _ints(hop))
        blocks = op.Reshape(op.Slice(signal, _ints(0), used, _ints(-1)),
                            op.Concat(op.Shape(signal, end=-1), _ints(-1, hop), axis=0))
        return op.Concat(*(op.Slice(blocks, _ints(j), op.Add(count, _ints(j)), _ints(-2))
                           for j in range(per_frame)), axis=-1)
    starts = op.Mul(op.Range(_int(0), op.Squeeze(count), _int(1)), _int(hop))
    index = op.Add(op.Unsqueeze(starts, _ints(1)),
                   op.Unsqueeze(op.Range(_int(0), _int(n_fft), _int(1)), _ints(0)))
    return op.Gather(signal, index, axis=-1)


def stft_as_products(self: Value, n_fft: int, hop_length: Optional[int] = None,
                   win_length: Optional[int] = None, window: Optional[Value] = None,
                   normalized: bool = False, onesided: Optional[bool] = None,
                   return_complex: Optional[bool] = None) -> Value:
    """The ONNX translation of ``aten::stft`` (``[batch?, samples]`` -> ``[batch?, bins,
    frames, 2]``): :func:`frames_of` times the window, then the two products of
    :func:`dft_stages`."""
    del return_complex  # the exported graph holds a complex tensor as (real, imaginary) pairs
    hop = hop_length or n_fft // 4
    bins = n_fft // 2 + 1 if onesided is None or onesided else n_fft
    p, q = factors(n_fft)
    first, second = dft_stages(n_fft, bins, n_fft ** -0.5 if normalized else 1.0)
    k2s = second.shape[-1] // 2
    keep = [0] * len(self.shape)  # Reshape's 0: the batch (where there is one) and frames stay
    b = len(keep) - 1  # the frames' axis
    x = op.Mul(frames_of(self, n_fft, hop),
               op.CastLike(centred_window(window, win_length, n_fft), self))
    x = op.MatMul(_floats(first), op.Reshape(x, _ints(*keep, p, q)))  # [.., frames, 2p, q]
    x = op.Transpose(op.Reshape(x, _ints(*keep, 2, p, q)),
                     perm=[*range(b), b + 2, b, b + 1, b + 3])  # [.., p, frames, 2, q]
    x = op.MatMul(op.Reshape(x, _ints(*keep, 0, 2 * q)), _floats(second))  # [.., p, frames, 2k2s]
    x = op.Transpose(op.Reshape(x, _ints(*keep, 0, 2, k2s)),
                     perm=[*range(b), b + 3, b, b + 1, b + 2])  # [.., k2s, p, frames, 2]
    x = op.Reshape(x, _ints(*keep[:-1], k2s * p, -1, 2))  # bin k1 + p k2 in order
    return op.Slice(x, _ints(0), _ints(bins), _ints(b))


# what torch's ONNX exporter is given as ``custom_translation_table``
TRANSLATIONS = {torch.ops.aten.stft.default: stft_as_products}
