"""Process-group set-up for ``torchrun`` (DDP): gloo on CPU, NCCL on GPU; rank 0 alone writes files."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as td

from ..errors import UsageError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False  # we created the process group, so we tear it down

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            td.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            td.all_reduce(t, op=td.ReduceOp.SUM)
        return t

    def any_true(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if it is true on one (so all ranks stop together)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Make every rank hold rank 0's buffers (BN running statistics are updated per rank in training)."""
        if self.enabled:
            for buffer in module.buffers():
                td.broadcast(buffer, src=0)

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``model`` in DistributedDataParallel when there are several ranks (its backward all-reduces the gradients)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def close(self) -> None:
        if self.started_here and td.is_initialized():
            td.destroy_process_group()


def from_environment(device_hint: str | None) -> DistContext:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if td.is_initialized():
        return DistContext(td.get_rank(), td.get_world_size(), local_rank)
    use_cuda = (device_hint or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if use_cuda:
        if torch.cuda.device_count() <= local_rank:
            raise UsageError(f"process {local_rank} has no GPU (this machine has {torch.cuda.device_count()}); "
                             "start fewer processes per node or train with `device` cpu")
        torch.cuda.set_device(local_rank)
    td.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30))
    return DistContext(td.get_rank(), td.get_world_size(), local_rank, started_here=True)
