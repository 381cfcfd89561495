"""Reading published checkpoints of pre-trained networks into the built-in models, strictly: every
key of the file is used or deliberately set aside, every weight of the model is covered, and
every shape agrees; otherwise one line says what does not fit."""

from __future__ import annotations

from pathlib import Path
import tomllib
from typing import Any, Callable

import torch
from torch import nn

from esc50 import Esc50Error

SHOWN = 4  # keys named in an error, before "and N more"
WEIGHTS_TABLE = Path(__file__).with_name("weights.toml")


def published_weights(name: str) -> dict[str, Any]:
    """The entry ``name`` of weights.toml (the published files the built-in models read), as
    the keyword arguments of ``register_weights``' ``register``."""
    with WEIGHTS_TABLE.open("rb") as handle:
        return {"name": name, **tomllib.load(handle)[name]}


def read_state_dict(path: str, expected: str) -> dict[str, torch.Tensor]:
    """The weights in a published checkpoint: the file's state dict, or its ``model`` entry (how
    PANNs distributes them), without a ``module.`` prefix (saved from DataParallel). ``expected``
    names the file and where it comes from, for the error when it is missing."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise Esc50Error(f"checkpoint {file} not found: expected {expected}")
    try:  # weights_only: a checkpoint runs no code while it loads
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise Esc50Error(f"{file}: not a PyTorch checkpoint of plain tensors ({reason})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise Esc50Error(f"{file}: holds no state dict (a dict of tensors, or one under 'model')")
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_published(model: nn.Module, state: dict[str, torch.Tensor],
                   rename: Callable[[str], str | None], new: tuple[str, ...], file: str) -> None:
    """Copy a published ``state`` into ``model``. ``rename`` maps each published key to the
    model's (None: set aside on purpose, such as the AudioSet output layer). Published networks
    are time-major and the built-in ones frequency-major, so 4-D convolution kernels are
    transposed. Every model key but those starting with a prefix in ``new`` (the new head) must
    be filled, except batch-norm step counters that older files lack."""
    own = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    unexpected, misshapen = [], []
    for key, value in state.items():
        target = rename(key)
        if target is None:
            continue
        if target not in own:
            unexpected.append(key)
            continue
        if value.dim() == 4:
            value = value.transpose(-1, -2)
        if value.shape != own[target].shape:
            misshapen.append(f"{key} {list(value.shape)} vs {list(own[target].shape)}")
            continue
        loaded[target] = value
    missing = [key for key in own if key not in loaded and not key.startswith(new)
               and not key.endswith("num_batches_tracked")]
    problems = [f"{what}: {', '.join(keys[:SHOWN])}"
                + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")
                for what, keys in (("missing", missing), ("unexpected", unexpected),
                                   ("other shapes", misshapen)) if keys]
    if problems:
        raise Esc50Error(f"{file} does not fit {type(model).__name__}: {'; '.join(problems)}")
    with torch.no_grad():
        for key, value in loaded.items():
            own[key].copy_(value)


class Freezable(nn.Module):
    """A model whose first layers can stay as loaded: :meth:`freeze` stops their gradients, and
    they stay in evaluation mode (batch-norm statistics and dropout) while the rest trains."""

    frozen: list[nn.Module] = []

    def freeze(self, modules: list[nn.Module]) -> None:
        self.frozen = list(modules)
        for module in self.frozen:
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> Freezable:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self


def check_freeze(freeze_blocks: int, blocks: int) -> None:
    if not 0 <= freeze_blocks <= blocks:
        raise ValueError(f"freeze_blocks={freeze_blocks} must be between 0 and {blocks}")


def trainable_groups(head: nn.Module, backbone: list[nn.Module], backbone_lr_scale: float
                     ) -> list[tuple[list[nn.Parameter], float]]:
    """Parameter groups with learning-rate factors: the new head at the base rate, the backbone
    (pre-trained) at ``backbone_lr_scale`` of it."""
    return [(list(head.parameters()), 1.0),
            ([p for module in backbone for p in module.parameters()], backbone_lr_scale)]
