"""``torch.stft`` in an exported ONNX file as one matrix product of its frames with a windowed
Fourier basis, instead of ONNX's ``STFT`` operator.

onnxruntime's ``STFT`` computes one frame after another; its matrix product runs the frames
times a ``[n_fft, 2 * bins]`` cosine and sine basis several times faster, although it does more
arithmetic than an FFT (docs/export.md: ``benchmarks/export.py`` times a file of each). The basis
is built inside the graph from ``Range`` and ``Cos``/``Sin`` nodes of constants, which
onnxruntime folds once when it loads the file, so the file does not grow by the basis' size
(4 MiB for n_fft 1024). The result is torch's: ``[batch?, bins, frames, 2]`` (real, imaginary),
scaled by ``n_fft ** -0.5`` when ``normalized``, the window zero-padded to ``n_fft`` in the
middle as ``torch.stft`` pads it.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from onnxscript import opset18 as op

Value = Any  # an onnxscript value in the exporter's graph
FLOAT, INT32 = 1, 6  # ONNX's numbers for the two element types


def _int(value: int) -> Value:
    """An int64 scalar."""
    return op.Constant(value_int=value)


def _ints(*values: int) -> Value:
    """A 1-d int64 tensor."""
    return op.Constant(value_ints=list(values))


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


def fourier_basis(n_fft: int, bins: int, scale: float) -> Value:
    """``[n_fft, 2 * bins]``: for sample n and bin k, ``scale * cos(2 pi n k / n_fft)`` and
    ``-scale * sin(...)`` side by side (the product's real and imaginary parts interleaved)."""
    # n * k in int32: exact, and where torch's exporter stores it (it folds a small outer
    # product into a table), 4 bytes an entry
    samples = op.Cast(op.Unsqueeze(op.Range(_int(0), _int(n_fft), _int(1)), _ints(1)), to=INT32)
    frequencies = op.Cast(op.Unsqueeze(op.Range(_int(0), _int(bins), _int(1)), _ints(0)),
                          to=INT32)
    turns = op.Mod(op.Mul(samples, frequencies), op.Cast(_int(n_fft), to=INT32))
    angle = op.Mul(op.Cast(turns, to=FLOAT), op.Constant(value_float=2 * math.pi / n_fft))
    parts = op.Concat(op.Unsqueeze(op.Cos(angle), _ints(-1)),
                      op.Unsqueeze(op.Neg(op.Sin(angle)), _ints(-1)), axis=-1)
    basis = op.Reshape(parts, _ints(n_fft, 2 * bins))
    return op.Mul(basis, op.Constant(value_float=scale)) if scale != 1.0 else basis


def frames_of(signal: Value, n_fft: int, hop: int) -> Value:
    """``[batch?, samples]`` -> ``[batch?, frames, n_fft]``: the frames every ``hop`` samples
    that fit. Where ``hop`` divides ``n_fft`` (every built-in featurizer), the signal is cut into
    blocks of ``hop`` samples and each frame is ``n_fft / hop`` neighbouring blocks side by side
    (copies); otherwise each frame's samples are gathered by index."""
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


def stft_as_matmul(self: Value, n_fft: int, hop_length: Optional[int] = None,
                   win_length: Optional[int] = None, window: Optional[Value] = None,
                   normalized: bool = False, onesided: Optional[bool] = None,
                   return_complex: Optional[bool] = None) -> Value:
    """The ONNX translation of ``aten::stft`` (``[batch?, samples]`` -> ``[batch?, bins,
    frames, 2]``): :func:`frames_of` times the window times :func:`fourier_basis`."""
    del return_complex  # the exported graph holds a complex tensor as (real, imaginary) pairs
    hop = hop_length or n_fft // 4
    bins = n_fft // 2 + 1 if onesided is None or onesided else n_fft
    window = op.CastLike(centred_window(window, win_length, n_fft), self)
    basis = op.CastLike(fourier_basis(n_fft, bins, n_fft ** -0.5 if normalized else 1.0), self)
    spectrum = op.MatMul(frames_of(self, n_fft, hop),
                         op.Mul(op.Unsqueeze(window, _ints(1)), basis))  # [.., frames, 2 bins]
    pairs = op.Reshape(spectrum, op.Concat(op.Shape(spectrum, end=-1), _ints(bins, 2), axis=0))
    return op.Transpose(pairs, perm=[1, 0, 2] if len(self.shape) == 1 else [0, 2, 1, 3])


# what torch's ONNX exporter is given as ``custom_translation_table``
TRANSLATIONS = {torch.ops.aten.stft.default: stft_as_matmul}
