"""`esc50 new-plugin NAME`: a working plugin package to start from (pyproject with the entry
point, one model, one augmentation, a test using esc50.testing)."""

from __future__ import annotations

import re
from pathlib import Path

from esc50 import PLUGIN_API_VERSION, Esc50Error
from esc50.core.files.write import output_folder, plain_name, write_text
from esc50.core.plugin_api.registry import load_registry

PYPROJECT = '''[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "esc50-{name}"
version = "0.1.0"
description = "esc50 plugins: {name}"
requires-python = ">=3.10"
dependencies = ["esc50"]

[project.entry-points.esc50]
# The namespace of this package's ids: {name}.meanpool, {name}.gain
{name} = "{package}.plugin"

[tool.setuptools]
packages = ["{package}"]
'''

PLUGIN = '''"""esc50 plugins of this package: a model and an augmentation (see esc50's docs/plugins.md)."""

from __future__ import annotations

import torch
from torch import nn

from esc50 import Augmentation, TaskConfig, check_min_max, frame_mask, hookimpl, to_device, uniform

ESC50_PLUGIN_API = {api}


class MeanPool(nn.Module):
    """Mean of each band over the valid frames, then a small MLP."""

    name = "meanpool"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 hidden: int = 128) -> None:
        """Options:
        hidden: units of the MLP's hidden layer
        """
        super().__init__()
        if hidden <= 0:
            raise ValueError(f"option hidden={{hidden}} must be positive")
        channels, bins, _ = input_shape
        self.mlp = nn.Sequential(nn.Linear(channels * bins, hidden), nn.ReLU(),
                                 nn.Linear(hidden, config.num_classes))

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(features.shape[-1], frame_lengths)[:, None, None, :]
        pooled = (features * mask).sum(-1) / mask.sum(-1)
        return self.mlp(pooled.flatten(1))


class Gain(Augmentation):
    """Scale waveforms by a gain drawn from [min_gain, max_gain]."""

    name = "gain"
    stage = "wave"

    def __init__(self, config: TaskConfig, min_gain: float = 0.5, max_gain: float = 1.0,
                 p: float = 0.5) -> None:
        super().__init__(p)
        check_min_max("gain", min_gain, max_gain, (0.0, 1.0))
        self.min_gain, self.max_gain = min_gain, max_gain

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {{"gain": uniform(self.min_gain, self.max_gain, batch_size, generator)}}

    def apply(self, wav: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        gain = torch.where(chosen, params["gain"], torch.ones_like(params["gain"]))
        return wav * to_device(gain, wav)[:, None]


@hookimpl
def register_models(register):
    register(MeanPool)


@hookimpl
def register_augmentations(register):
    register(Gain)
'''

TEST = '''"""This package's plugins keep esc50's contracts."""

from esc50 import check_augmentation, check_model


def test_the_model_keeps_its_contract():
    check_model("{name}.meanpool")


def test_the_augmentation_keeps_its_contract():
    check_augmentation("{name}.gain:p=1")
'''

README = '''# esc50-{name}

esc50 plugins: `{name}.meanpool` (a model) and `{name}.gain` (an augmentation).

```bash
pip install -e .            # registers the plugins through the `esc50` entry point group
esc50 list-plugins          # shows {name}.meanpool and {name}.gain
esc50 train --model {name}.meanpool --aug {name}.gain:p=0.5
python -m pytest tests      # contract checks (esc50.testing)
```
'''


def write_skeleton(name: str, parent: Path) -> Path:
    """Write the package ``esc50-<name>`` under ``parent``; return its folder."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise Esc50Error(f"plugin name {name!r} must be a lower-case identifier (letters, digits, "
                         "underscores): it becomes the namespace of the plugin ids")
    taken = {source.namespace: source.package for source in load_registry().sources}
    if name in taken:
        raise Esc50Error(f"plugin name {name!r} is the namespace of {taken[name]}'s plugins "
                         f"({name}.*): choose another, or its plugins would list beside them")
    root = output_folder(parent, "--dir") / plain_name(f"esc50-{name}", "package folder", parent)
    if root.exists():
        raise Esc50Error(f"{root} already exists: choose another name or folder")
    package = f"{name}_esc50"
    files = {"pyproject.toml": PYPROJECT.format(name=name, package=package),
             f"{package}/__init__.py": f'"""esc50 plugins: {name}."""\n',
             f"{package}/plugin.py": PLUGIN.format(api=PLUGIN_API_VERSION),
             "tests/test_plugin.py": TEST.format(name=name),
             "README.md": README.format(name=name)}
    for relative, text in files.items():
        path = root / relative
        write_text(output_folder(path.parent, "package folder") / path.name, text)
    return root
