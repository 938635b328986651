"""One trained network as every command runs it: the module, what it expects (:class:`Preprocess`) and predicts.

:class:`Network` is what :func:`resnet.inference.load.load_network` returns (a weights file, a run folder or
``NAME:TAG``), what ``resnet eval`` / ``predict`` / ``serve`` / ``explain`` take (through
:func:`resnet.evaluate.resolve_source`), and what :func:`resnet.inference.prepare.prepare` optimises in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data.preprocess import Preprocess
from ..errors import UsageError
from .protocols import Scorer


@dataclass
class Network:
    """A network with its weights loaded (eval mode), what it expects and predicts, and how it runs."""

    name: str  # short label for tables (file stem or weights name)
    source: str  # the SOURCE as given
    kind: str  # where it comes from: resnet / akamaster / torchvision / timm / random
    model: nn.Module
    preprocess: Preprocess
    classes: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    forward: Callable[[Tensor], Tensor] | None = None  # an optimised callable replacing model.forward
    optimized: nn.Module | None = None  # what resnet.inference.optimize returned, if used
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where the model runs; see place()

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes"))

    @property
    def model_name(self) -> str:
        return str(getattr(self.model, "model_name", type(self.model).__name__))

    def scorer(self) -> Scorer:
        """How protocols call this network (CPU tensors in and out, wherever the model runs); the optimised
        model's feature map is used when it has one."""
        if self.optimized is None:
            scorer = Scorer.of(self.model)
        else:
            dense = Scorer.of(self.optimized).dense_logits if hasattr(self.optimized, "forward_features") else None
            scorer = Scorer(self.forward or self.optimized, dense)
        if self.device.type == "cpu":
            return scorer
        return Scorer(_on_device(scorer.logits, self.device),
                      scorer.dense_logits and _on_device(scorer.dense_logits, self.device))

    def place(self, device: str | None) -> "Network":
        """Run the model on ``device`` (cpu, cuda, cuda:N; ``None`` / auto: a GPU when there is one)."""
        from ..utils.device import resolve_device

        self.device = resolve_device(device)
        if self.optimized is not None and self.device.type != "cpu":
            raise UsageError("the optimised modes run on the CPU; use device cpu, or no optimisation on a GPU")
        self.model.to(self.device)
        return self

    def class_names(self) -> list[str]:
        return list(self.classes) if self.classes else [f"class_{i}" for i in range(self.num_classes)]


def _on_device(fn: Callable[[Tensor], Tensor], device: torch.device) -> Callable[[Tensor], Tensor]:
    return lambda x: fn(x.to(device, non_blocking=True)).float().cpu()
