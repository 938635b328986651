"""How one step computes the batch's gradient: the strategies :meth:`Trainer.step` calls.

Each has ``forward_backward(x, y, *, amp, label_smoothing) -> (loss, logits)`` and leaves the gradient of
the batch's mean loss in the model's ``.grad``; the trainer then applies it the same way for all:

- :class:`WholeBatch`: the batch through one network, which may be wrapped by DDP
  (:meth:`resnet.train.distributed.DistContext.wrap`: the backward all-reduces the gradients) and
  ``torch.compile``; the loss is scaled by the GradScaler for float16;
- :class:`resnet.train.replicas.CoreReplicas`: slices of the batch on the CPU's cores, one replica each.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StepStrategy(Protocol):
    def forward_backward(self, x: Tensor, y: Tensor, *, amp: torch.dtype | None, label_smoothing: float
                         ) -> tuple[Tensor, Tensor]: ...


class WholeBatch:
    """The whole batch through ``net``; the backward of ``scaler.scale(loss)`` (the loss itself when disabled)."""

    def __init__(self, net: nn.Module, scaler: torch.amp.GradScaler) -> None:
        self.net = net
        self.scaler = scaler

    def forward_backward(self, x: Tensor, y: Tensor, *, amp: torch.dtype | None, label_smoothing: float
                         ) -> tuple[Tensor, Tensor]:
        with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
            logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        self.scaler.scale(loss).backward()
        return loss.detach(), logits
