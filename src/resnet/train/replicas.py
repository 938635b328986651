"""Data parallelism over a CPU's cores inside one process: one model replica and one thread per core.

Splitting every small CIFAR convolution over all cores (PyTorch's intra-op parallelism) pays a
barrier per operator, forward and backward, and shares each core's cache between slices of the
same tensors; when other work shares the machine, one late core stalls every operator. Giving each
core a whole slice of the batch instead, with its own replica and one intra-op thread, keeps its pace when
other work shares the machine (``benchmarks/train_throughput.py``: docs/results/train/README.md, "Core
replicas"). PyTorch releases the GIL inside its kernels and the CPU
autograd engine runs backward on the calling thread, so the threads run truly in parallel.

It is DistributedDataParallel's semantics without the processes: the replicas start each step
with the main model's weights and buffers, every slice's loss is weighted by its share of the
batch, and the gradients are summed into the main model in a fixed order, so a run is as
deterministic (and resumes as exactly) as a single-threaded one. Batch norm normalises each slice
on its own, as the paper's CIFAR nets did on their two GPUs (64 images each at batch 128); the
running statistics are the first slice's, as DDP keeps rank 0's.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MIN_IMAGES_PER_REPLICA = 16  # below this, batch-norm statistics get noisy and the split stops paying


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def replica_count(requested: int, batch_size: int, *, device: torch.device, distributed: bool, compiled: bool) -> int:
    """How many replicas to train with: ``requested`` (0 = one per core), where the split applies at all."""
    if device.type != "cpu" or distributed or compiled:
        return 1  # GPUs, torchrun ranks and compiled graphs parallelise their own way
    wanted = requested or min(cpu_cores(), torch.get_num_threads())
    return max(1, min(wanted, batch_size // MIN_IMAGES_PER_REPLICA))


class CoreReplicas:
    """Runs forward and backward of ``model`` on ``workers`` slices of each batch at once.

    ``model`` stays the one the optimizer, the checkpoints and evaluation see; after
    :meth:`forward_backward` its ``.grad`` holds the gradient of the whole batch's mean loss.
    """

    def __init__(self, model: nn.Module, workers: int) -> None:
        if workers < 2:
            raise ValueError(f"CoreReplicas needs at least 2 workers, got {workers}")
        self.model = model
        self.workers = workers
        self.replicas = [model] + [copy.deepcopy(model) for _ in range(workers - 1)]
        self._params = [list(r.parameters()) for r in self.replicas]
        self._buffers = [list(r.buffers()) for r in self.replicas]
        # The intra-op thread count is per OS thread, so the caller's own setting is left alone.
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="resnet-replica",
                                        initializer=torch.set_num_threads, initargs=(1,))

    def _sync(self) -> None:
        with torch.no_grad():
            for params, buffers in zip(self._params[1:], self._buffers[1:]):
                for mine, main in zip([*params, *buffers], [*self._params[0], *self._buffers[0]]):
                    mine.copy_(main)

    def train(self, mode: bool = True) -> None:
        for r in self.replicas:
            r.train(mode)

    def forward_backward(self, x: Tensor, y: Tensor, *, amp: torch.dtype | None, label_smoothing: float
                         ) -> tuple[Tensor, Tensor]:
        """Mean loss of the batch (detached) and its logits; gradients accumulate into ``model``."""
        self._sync()
        for r in self.replicas[1:]:
            for p in r.parameters():
                p.grad = None
        n = len(y)
        xs, ys = x.tensor_split(self.workers), y.tensor_split(self.workers)

        def run(i: int) -> tuple[Tensor, Tensor]:
            if len(ys[i]) == 0:
                return torch.zeros((), dtype=torch.float32), torch.empty(0)
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                logits = self.replicas[i](xs[i])
                loss = F.cross_entropy(logits.float(), ys[i], label_smoothing=label_smoothing)
            weighted = loss * (len(ys[i]) / n)  # the slices' gradients then sum to the batch mean's
            weighted.backward()
            return weighted.detach(), logits.detach()

        results = list(self._pool.map(run, range(self.workers)))
        with torch.no_grad():
            main = self._params[0]
            for params in self._params[1:]:
                for p_main, p in zip(main, params):
                    if p.grad is None:
                        continue
                    if p_main.grad is None:
                        p_main.grad = p.grad.clone()
                    else:
                        p_main.grad.add_(p.grad)
        loss = torch.stack([r[0] for r in results]).sum()
        logits = torch.cat([r[1] for r in results if r[1].numel()])
        return loss, logits

    def map(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """``fn`` (an inference function, thread-safe) over slices of ``x`` on the replica threads, concatenated."""
        if len(x) < 2 * self.workers:
            return fn(x)

        def run(part: Tensor) -> Tensor:
            with torch.inference_mode():
                return fn(part)

        return torch.cat(list(self._pool.map(run, x.tensor_split(self.workers))))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
