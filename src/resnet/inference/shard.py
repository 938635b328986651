"""Batch sharding across cores: each core runs its own slice of the batch on one thread.

Splitting every convolution over all cores (intra-op parallelism) costs a barrier per layer and
shares each core's cache between slices of the same tensors, which was slower for float convolutions
on a few cores than giving each core a whole sub-batch. PyTorch releases the GIL inside its kernels, so
Python threads with one intra-op thread each run truly in parallel. The measurements behind this module's
constants: docs/results/inference/README.md ("Why the threading and sharding constants are what they are").
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch
from torch import Tensor, nn

from ..utils.threads import single_threaded

# Below this many multiply-adds a call runs on one intra-op thread (ResNet-20: a batch of 12).
SINGLE_THREAD_BELOW = 500_000_000
# A slice holds at least this many images and this many input pixels: small slices keep a core's activations
# in its cache, and the cores take slices from one queue, so a core slowed by other work (a server's
# decoding) takes fewer instead of keeping the other waiting at the end. Measured: docs/results/inference/.
SLICE_IMAGES, SLICE_PIXELS = 8, 32_768


class BatchSharded(nn.Module):
    """Run ``runner`` on ``workers`` slices of the batch at once, one thread per slice.

    Batches smaller than ``2 * workers`` are not worth splitting and run directly (with all
    intra-op threads). ``runner`` must not keep state between calls (the fused runners do not).
    """

    def __init__(self, runner: nn.Module, workers: int | None = None) -> None:
        super().__init__()
        self.runner = runner
        self.workers = max(1, workers or torch.get_num_threads())
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                # The intra-op thread count is per OS thread, so this leaves the caller's setting alone.
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="resnet-shard", initializer=torch.set_num_threads, initargs=(1,))
            return self._pool

    def forward(self, x: Tensor) -> Tensor:
        if self.workers < 2 or len(x) < 2 * self.workers:
            return self.runner(x)
        slices = x.chunk(slice_count(len(x), int(x.shape[-2]) * int(x.shape[-1]), self.workers))
        return torch.cat(list(self._executor().map(self.runner, slices)))

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)


def slice_count(batch: int, pixels: int, workers: int) -> int:
    """How many slices a batch of ``batch`` images of ``pixels`` pixels is cut into for ``workers``
    cores: slices of at least :data:`SLICE_IMAGES` images and :data:`SLICE_PIXELS` pixels, a multiple
    of ``workers`` so that the last round keeps every core busy, and never fewer than ``workers``."""
    per_slice = max(SLICE_IMAGES, -(-SLICE_PIXELS // max(pixels, 1)))
    slices = max(1, batch // per_slice)
    return max(workers, slices - slices % workers)


class SmallCallsSingleThreaded(nn.Module):
    """Run calls of fewer than :data:`SINGLE_THREAD_BELOW` multiply-adds on one intra-op thread.

    Every parallel region ends in a barrier. A small call (ResNet-20 at batch 1: 41 M multiply-adds
    in 19 convolutions of tens of microseconds each) spends more time in barriers than in arithmetic,
    and on a machine whose cores are busy every barrier waits for a descheduled worker (figures:
    docs/results/inference/README.md). Larger calls keep every thread.
    """

    def __init__(self, runner: nn.Module, macs_per_image: Callable[[int, int, int], int]) -> None:
        super().__init__()
        self.runner = runner
        self._macs_per_image = macs_per_image
        self._macs: dict[tuple[int, int, int], int] = {}

    def forward(self, x: Tensor) -> Tensor:
        key = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
        if key not in self._macs:
            self._macs[key] = self._macs_per_image(*key)
        if len(x) * self._macs[key] >= SINGLE_THREAD_BELOW or torch.get_num_threads() == 1:
            return self.runner(x)
        with single_threaded():
            return self.runner(x)
