"""Building blocks shared by the built-in models."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from esc50 import frame_mask, whole_clips
from esc50.plugins.models import winograd


POINTWISE = (nn.ReLU, nn.BatchNorm2d, nn.Dropout)  # layers that keep zeroed steps apart


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 3,
                 padding: int | str = 1) -> nn.Sequential:
    """Conv2d -> BatchNorm2d -> ReLU (the unit of the VGG-style and Kumar CNNs)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))``. Where ``bn`` normalizes by its running statistics (in eval), one
    convolution with the batch norm folded into its weights and bias: the same function, without
    a pass over the output. Gradients still reach every parameter. The two modules run as they
    are where a hook watches either (an activation map, say), so that the hook sees them; under
    autocast, where the folded weights would be rounded to bf16 with the statistics in them
    (that moved 5 of 400 held-out clips of a model trained in bf16, for no time gained); and
    while traced, exported or compiled (:func:`traced`), so that an exported file holds the
    weights as stored (an exporter folds batch norms itself, and int8 quantizes the weights it
    finds). In eval without gradients on an x86 CPU without AVX-512, a 3x3 convolution of enough
    input channels (:data:`winograd.MIN_CHANNELS`) runs as Winograd's F(4x4, 3x3)
    (:mod:`winograd`): the same values up to rounding, the deeper layers in about half the time."""
    if bn.training or bn.running_var is None or hooked(conv, bn) or traced() \
            or torch.is_autocast_enabled(x.device.type):
        return bn(conv(x))
    scale = torch.rsqrt(bn.running_var + bn.eps)
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    bias = shift if conv.bias is None else shift + conv.bias * scale
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    if winograd.applies(conv, x):
        return winograd.conv3x3(x, weight, bias)
    return conv._conv_forward(x, weight, bias)


def conv_bn_sequential(layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)``, where ``layers`` is a Sequential that starts with a convolution and its
    batch norm, those two through :func:`conv_bn`; any other module, or one a hook watches, runs
    as it is."""
    starts_with_conv_bn = isinstance(layers, nn.Sequential) and len(layers) >= 2 and \
        isinstance(layers[0], nn.Conv2d) and isinstance(layers[1], nn.BatchNorm2d)
    if not starts_with_conv_bn or hooked(layers):
        return layers(x)
    conv, bn, *rest = layers
    x = conv_bn(conv, bn, x)
    for layer in rest:
        x = layer(x)
    return x


def traced() -> bool:
    """Whether the model is being traced (TorchScript, ONNX), exported (``torch.export``) or
    compiled (``torch.compile``): a graph made once for any input, where nothing is read from
    the data and batch norms are left to the compiler or exporter."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


HOOK_REGISTRIES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                   "_backward_pre_hooks")  # torch's, on each module and (``_global...``) on all


def hooked(*modules: nn.Module) -> bool:
    """Whether a forward or backward hook is registered on any of ``modules`` or on all
    modules (``torch.nn.modules.module.register_module_forward_hook`` and the like). A registry
    this torch does not have counts as hooked, so that the modules run as they are."""
    registries = [getattr(nn.modules.module, "_global" + name, None) for name in HOOK_REGISTRIES]
    registries += [getattr(module, name, None) for module in modules for name in HOOK_REGISTRIES]
    return any(registry is None or len(registry) > 0 for registry in registries)


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the last (time) axis of [B, ..., T], counting only the first ``lengths`` steps
    (all of them in a graph for whole clips: :func:`esc50.whole_clips`)."""
    if whole_clips():
        return x.mean(-1)
    mask = frame_mask(x.shape[-1], lengths).view(x.shape[0], *([1] * (x.dim() - 2)), -1)
    return (x * mask).sum(-1) / mask.sum(-1)


def masked_max(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Max over the last (time) axis of [B, ..., T], ignoring padded steps (none in a graph for
    whole clips)."""
    if whole_clips():
        return x.amax(-1)
    mask = frame_mask(x.shape[-1], lengths).view(x.shape[0], *([1] * (x.dim() - 2)), -1)
    return x.masked_fill(~mask, float("-inf")).amax(-1)


def fills_every_frame(lengths: torch.Tensor, frames: int) -> bool:
    """Whether every clip's valid length is all ``frames`` (nothing to zero): True in a graph
    traced for whole clips only (:func:`esc50.whole_clips`); otherwise read only where that
    costs no wait on a device: lengths on the host, not while traced, exported or compiled
    (there False, as if padded)."""
    if whole_clips():
        return True
    if lengths.device.type != "cpu" or traced():
        return False
    return bool((lengths >= frames).all())


def zero_padding(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``x`` [B, ..., T] with the steps past each clip's ``lengths`` set to zero (``None``, or a
    graph traced for whole clips: no clip is padded, ``x`` as it is)."""
    if lengths is None or whole_clips():
        return x
    return x * frame_mask(x.shape[-1], lengths).view(x.shape[0], *([1] * (x.dim() - 2)), -1)


def masked_layers(layers: nn.Sequential, x: torch.Tensor, lengths: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``layers`` on [B, C, F, T] with each clip's padded steps zeroed before every layer,
    so that a clip's valid output does not depend on how much padding its batch adds: a
    convolution's zero padding at the end of a clip scored alone and the zeroed steps of a padded
    batch are the same zeros (pointwise layers need no zeroing). Valid lengths follow the 2-wide
    max poolings (rounded as the pooling rounds, at least one step). Where no clip is padded,
    nothing is zeroed; conv-BN blocks run through :func:`conv_bn_sequential`. Returns the output
    and its valid lengths."""
    padded = not fills_every_frame(lengths, x.shape[-1])  # and stays so through the poolings
    for layer in layers:
        if not isinstance(layer, POINTWISE):
            x = zero_padding(x, lengths if padded else None)
        x = conv_bn_sequential(layer, x)
        if isinstance(layer, nn.MaxPool2d):
            lengths = (-(-lengths // 2) if layer.ceil_mode else lengths // 2).clamp(min=1)
    return zero_padding(x, lengths if padded else None), lengths


def per_clip(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             lengths: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to each clip's valid steps of [B, ..., T] (clips of one length together):
    for layers that summarize the whole time axis (adaptive pooling). Reads the lengths on the
    host, so it waits for the device once per call. An exported model takes whole clips only
    (see :mod:`esc50.commands.export`), so under ``torch.export`` every clip is whole."""
    if torch.compiler.is_exporting() or bool((lengths >= x.shape[-1]).all()):
        return fn(x)
    valid = lengths.clamp(1, x.shape[-1]).tolist()
    out: list[torch.Tensor | None] = [None] * x.shape[0]
    for length in set(valid):
        rows = [i for i, v in enumerate(valid) if v == length]
        for i, y in zip(rows, fn(x[rows, ..., :length])):
            out[i] = y
    return torch.stack(out)


def pad_time(features: torch.Tensor, frames: int) -> torch.Tensor:
    """Zero-pad the time axis of [B, C, F, T] up to ``frames`` (no-op when already longer)."""
    missing = frames - features.shape[-1]
    return nn.functional.pad(features, (0, missing)) if missing > 0 else features
