"""Everything that changes while a run trains, and its checkpoint form: the model, the optimizer,
the learning-rate schedule, the moving average of the weights, the random generators, the
history of finished epochs and the augmentation counts of the last one. :meth:`state_dict` and
:meth:`load_state_dict` mirror each other, so a resumed run continues exactly."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.training.averaging import MovingAverage
from esc50.core.training.distributed import Distributed
from esc50.core.training.schedule import lr_factor



def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Generators:
    """The run's random streams besides torch's global one: the sampler's draw of training clips,
    the per-example augmentation draws (on the host: choosing clips never waits for a GPU) and
    the augmentation signals (noise, on the training device; the same generator on a CPU)."""

    sampler: torch.Generator
    examples: torch.Generator
    signals: torch.Generator

    @classmethod
    def seeded(cls, seed: int, rank: int, device: torch.device) -> Generators:
        """Each process its own augmentation streams; one sampler draw for all processes."""
        signals = torch.Generator(device=device).manual_seed(seed + 1 + rank)
        examples = (torch.Generator().manual_seed(seed + 1 + rank) if device.type != "cpu"
                    else signals)
        return cls(torch.Generator().manual_seed(seed), examples, signals)


def parameter_groups(model: nn.Module, learning_rate: float) -> list[dict]:
    """The optimizer's parameter groups: the model's own ``parameter_groups()`` ((parameters,
    learning-rate factor) pairs: a pre-trained backbone learns slower than its new head) where
    it has one, else one group; frozen parameters (``requires_grad`` false) are left out."""
    groups = (model.parameter_groups() if hasattr(model, "parameter_groups")
              else [(list(model.parameters()), 1.0)])
    return [{"params": [p for p in params if p.requires_grad], "lr": learning_rate * factor}
            for params, factor in groups]


def state_bytes(model: nn.Module, config: TaskConfig) -> int:
    """Bytes the optimizer's state (Adam's two moments, SGD's momentum) and the moving average
    of the weights will take besides the model."""
    params = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    every = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return params * (1 if config.optimizer == "sgd" else 2) + (every if config.ema_decay else 0)


def make_optimizer(model: nn.Module, config: TaskConfig) -> torch.optim.Optimizer:
    """The config's ``optimizer``: Adam (the report's; ``weight_decay`` as an L2 term), AdamW
    (decoupled weight decay) or SGD with Nesterov momentum 0.9. On a GPU the fused kernels,
    which skip a step whose gradients are not finite without waiting for the GPU
    (:meth:`TrainingState.step`)."""
    groups = parameter_groups(model, config.learning_rate)
    fused = {"fused": True} if on_gpu(model) else {}
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.learning_rate,
                                 weight_decay=config.weight_decay, **fused)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=0.9, nesterov=True,
                               weight_decay=config.weight_decay, **fused)
    return torch.optim.Adam(groups, lr=config.learning_rate, weight_decay=config.weight_decay,
                            **fused)


def on_gpu(model: nn.Module) -> bool:
    return any(p.device.type == "cuda" for p in model.parameters())


@dataclass
class TrainingState:
    """The parts of a run that training changes (see the module docstring)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    average: MovingAverage | None
    generators: Generators
    history: list[dict[str, float]] = field(default_factory=list)
    augmented: dict[str, dict[str, int]] = field(default_factory=dict)  # counts, last epoch

    @classmethod
    def create(cls, model: nn.Module, config: TaskConfig, steps_per_epoch: int,
               generators: Generators) -> TrainingState:
        optimizer = make_optimizer(model, config)
        scheduler = None
        if config.scheduler == "cosine" or config.warmup_epochs:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
                lr_factor, warmup_steps=round(config.warmup_epochs * steps_per_epoch),
                total_steps=config.num_epochs * steps_per_epoch,
                cosine=config.scheduler == "cosine"))
        average = MovingAverage(model, config.ema_decay) if config.ema_decay else None
        return cls(model, optimizer, scheduler, average, generators)

    @property
    def scored_model(self) -> nn.Module:
        """The weights validation scores and the run reports: the moving average when on."""
        return self.average.module if self.average is not None else self.model

    @property
    def epoch(self) -> int:
        """Epochs finished."""
        return len(self.history)

    def step(self, loss_finite: torch.Tensor) -> None:
        """After ``loss.backward()``: the optimizer, the schedule and the moving average. A step
        whose loss (``loss_finite``: False where not finite) or any gradient is not finite is
        skipped, so a NaN never reaches the weights: on a GPU inside the fused optimizer's
        kernel (told through ``found_inf``, as mixed-precision scalers do: no wait for the GPU),
        on a CPU by reading the flag, which costs nothing there. The loop reports it."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        found = (~loss_finite).float().reshape(1)
        if grads:  # sets ``found`` to 1 where a gradient holds a NaN or an infinity
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found,
                                                             torch.ones_like(found))
        if on_gpu(self.model):
            self.optimizer.found_inf = found  # read by the fused kernels
            self.optimizer.step()
        elif found.item():
            return
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.average is not None:
            self.average.update_parameters(self.model)

    def state_dict(self, dist: Distributed) -> dict[str, Any]:
        """The checkpoint form (collective under torchrun: every process's generators)."""
        g = self.generators
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "ema": self.average.state_dict() if self.average is not None else None,
                "rng": {"torch": torch.get_rng_state(), "sampler": g.sampler.get_state(),
                        "augment": dist.gather(g.signals.get_state()),
                        "draws": dist.gather(g.examples.get_state()),
                        "cuda": (torch.cuda.get_rng_state_all()
                                 if g.signals.device.type == "cuda" else None)},
                "epoch": self.epoch, "history": self.history, "augmented": self.augmented}

    def load_state_dict(self, state: dict[str, Any], dist: Distributed) -> None:
        """Continue from :meth:`state_dict`'s output."""
        rng = state["rng"]
        if len(rng["augment"]) != dist.world_size:
            raise Esc50Error(f"the run was trained by {len(rng['augment'])} process(es); resume "
                             f"it with as many, not {dist.world_size}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.average is not None:
            self.average.load_state_dict(state["ema"])
        torch.set_rng_state(rng["torch"])
        g = self.generators
        g.sampler.set_state(rng["sampler"])
        g.signals.set_state(rng["augment"][dist.rank])
        if "draws" in rng:  # (checkpoints from before the host draws have none)
            g.examples.set_state(rng["draws"][dist.rank])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.history, self.augmented = list(state["history"]), dict(state["augmented"])
