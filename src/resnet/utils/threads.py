"""Thread settings for small workloads."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one intra-op thread, then restore the previous count.

    For work made of many tiny operations (a batch-of-one pass that only counts shapes, say) more
    threads gain nothing, and on a machine whose cores are busy with other processes every parallel
    region waits for a descheduled worker (a ResNet-1202 batch-of-one forward: docs/results/inference/README.md).
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
