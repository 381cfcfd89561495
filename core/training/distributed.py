"""Multi-process training through torch.distributed, set up from torchrun's environment.

``torchrun --nproc-per-node N -m esc50 train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; each builds a :class:`Distributed` from them. Without
those variables (a plain ``esc50 train``) it is the single-process no-op.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
import torch.distributed as dist

from esc50.core.errors import Esc50Error


def is_main_process() -> bool:
    """False in the torchrun processes other than rank 0 (which alone print and write)."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes, and the collectives the trainer uses."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, device: torch.device) -> Distributed:
        """Join the process group torchrun describes (gloo on the CPU, NCCL on CUDA)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run directory and prints."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process on a node: ``cuda`` becomes ``cuda:<local rank>``."""
        if device.type != "cuda" or not self.enabled:
            return device
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def per_process_batch(self, batch_size: int) -> int:
        """The share of the global ``batch_size`` each process trains on per step, so N processes
        take the same optimizer steps as one."""
        if batch_size % self.world_size:
            raise Esc50Error(f"batch_size={batch_size} does not split evenly over "
                             f"{self.world_size} processes: use a multiple of {self.world_size}")
        return batch_size // self.world_size

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sums of ``values`` over all processes."""
        if not self.enabled:
            return values
        total = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return total.tolist()

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every process, by rank."""
        if not self.enabled:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value``, in every process."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group (at the end of a run)."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def held_back(step_model: torch.nn.Module, hold: bool) -> ContextManager:
    """With ``hold``, DistributedDataParallel's ``no_sync``: the gradients of the forward and
    backward inside stay in this process, to be reduced with those of the optimizer step's last
    micro-batch (one all-reduce a step instead of one a micro-batch; the sum is the same).
    Nothing otherwise, and nothing for a model that is not wrapped."""
    module = getattr(step_model, "_orig_mod", step_model)  # the wrapper under torch.compile
    return module.no_sync() if hold and hasattr(module, "no_sync") else nullcontext()
