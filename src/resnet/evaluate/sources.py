"""Turning a SOURCE (checkpoint file, run folder or model name) into a network with its preprocessing.

- our safetensors checkpoints (or a run folder: ``best.safetensors``, else ``last``) carry the
  architecture, class names and preprocessing in their metadata, so they need no flags;
- imported checkpoints get the convention of the project that trained them: akamaster → ImageNet
  mean/std at 32x32 with CIFAR-10 class names; torchvision / timm → ImageNet mean/std, resize 256,
  crop 224, ImageNet class names. The network is named by ``model_name`` or read off the file name
  (``resnet56-4bfd9763.th`` → ``resnet56``); the class count is read off the classifier weights;
- ``NAME:TAG`` (``resnet50:tv_in1k_v2``, ``resnet56:default``) gives named pretrained weights
  (:mod:`resnet.weights`, downloaded once and checked) with the preprocessing they were published with;
- a registered model name alone names no weights: :func:`weights_for_name` refuses it, listing the named
  weights it has (a random network would answer confidently and wrongly), unless ``random_weights=True``
  asks for an untrained network on purpose (``resnet bench``, which only times).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data.preprocess import Preprocess
from ..errors import CheckpointError, UsageError
from ..weights.network import LoadedNetwork, default_preprocess, load_network
from ..weights.network import build_network, is_model_name
from .names import IMPORT_SOURCES
from .protocols import Network


@dataclass
class Member:
    """One network ready for evaluation: the model, how to call it and what it expects."""

    name: str  # short label for tables (file stem or model name)
    source: str  # the SOURCE as given
    kind: str  # resnet / akamaster / torchvision / timm / random
    model: nn.Module
    preprocess: Preprocess
    classes: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    forward: Callable[[Tensor], Tensor] | None = None  # an optimised callable replacing model.forward
    optimized: nn.Module | None = None  # what resnet.deploy.optimize returned, if used
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where the model runs; see place()

    @classmethod
    def of(cls, net: LoadedNetwork) -> "Member":
        """A network loaded by :mod:`resnet.weights.network`, ready for evaluation."""
        return cls(net.name, net.source, net.kind, net.model, net.preprocess, net.classes, net.metadata)

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes"))

    @property
    def model_name(self) -> str:
        return str(getattr(self.model, "model_name", type(self.model).__name__))

    def network(self) -> Network:
        """How protocols call this member (CPU tensors in and out, wherever the model runs); the optimised
        model's feature map is used when it has one."""
        if self.optimized is None:
            net = Network.of(self.model)
        else:
            dense = Network.of(self.optimized).dense_logits if hasattr(self.optimized, "forward_features") else None
            net = Network(self.forward or self.optimized, dense)
        if self.device.type == "cpu":
            return net
        return Network(_on_device(net.logits, self.device), net.dense_logits and _on_device(net.dense_logits, self.device))

    def place(self, device: str | None) -> "Member":
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


def resolve_source(
    source: str, *, model_name: str | None = None, checkpoint_source: str = "auto", num_classes: int | None = None,
    random_weights: bool = False,
) -> Member:
    """Build the :class:`Member` described by ``source``; errors are one-line :class:`~resnet.errors.ResNetError`.

    A model name resolves through :func:`weights_for_name`; ``random_weights=True`` gives it untrained
    weights instead (for timing only: its answers mean nothing).
    """
    if checkpoint_source not in IMPORT_SOURCES:
        raise UsageError(f"unknown checkpoint origin {checkpoint_source!r}; choose one of {', '.join(IMPORT_SOURCES)}")
    if Path(source).exists() or (":" in source and is_model_name(source.split(":", 1)[0])):
        return Member.of(load_network(source, model_name, checkpoint_source))
    if is_model_name(source):
        if random_weights:
            return _random(source, num_classes)
        return weights_for_name(source)
    from ..models.specs import resolve_spec

    try:
        resolve_spec(source)
    except ValueError as err:  # a CIFAR-style name with an impossible depth: say which depths exist
        raise UsageError(f"{source!r} is no checkpoint file or run folder, and as a model name: {err}") from None
    raise UsageError(f"{source!r} is neither a checkpoint file, a run folder nor a model name; check the path (`resnet list` shows model names)")


def weights_for_name(name: str) -> Member:
    """A bare model NAME is refused with the reason, naming the weights it could mean: a download
    should never start, nor an untrained network answer, because a tag was left out."""
    from ..weights import entries_for

    entries = entries_for(name)
    if entries:
        default = next((e for e in entries if e.default), entries[0])
        others = [e.name for e in entries if e is not default][:3]
        raise CheckpointError(
            f"{name} is a model name, not weights; name the weights: {default.name} (recommended)"
            f"{', ' + ', '.join(others) if others else ''} or {name}:default (`resnet weights list {name}` shows all), "
            "or pass a checkpoint file or run folder")
    raise CheckpointError(
        f"{name} is a model name, and no trained weights for it are published; an untrained network would "
        f"give confident, meaningless answers. Pass a checkpoint file or run folder instead "
        f"(train one with `resnet train {name}`)"
    )


def _random(name: str, num_classes: int | None) -> Member:
    model = build_network(name, **({"num_classes": num_classes} if num_classes else {}))
    model.eval()
    return Member(name, name, "random", model, default_preprocess(model.spec))

