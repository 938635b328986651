"""Evaluating one network or several together: each member's result and, for several, their ensemble's.

The ensemble averages the members' softmax probabilities (each member computed with its own
preprocessing and the chosen protocol), as the paper's ensembles of Table 4/5 do. All members see
the same images in the same order in one pass over the data, so the data is decoded once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..errors import DataError, UsageError
from ..inference.network import Network
from ..inference.protocols import EvalProtocol, ImageBatch
from .data import EvalData
from .metrics import Accumulator
from .preprocess import match_channels


@dataclass
class Result:
    """Scores of one member (or of the ensemble) over the whole data."""

    name: str
    source: str
    model: str
    protocol: str
    metrics: Accumulator
    seconds: float = 0.0  # time spent in preprocessing and forward passes, not in decoding
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.metrics.count / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self, classes: Sequence[str]) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "model": self.model,
            "protocol": self.protocol,
            **self.metrics.summary(classes),
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 2),
            **self.extra,
        }


@dataclass
class EvalReport:
    protocol: str
    data: str
    classes: list[str]
    members: list[Result]
    ensemble: Result | None = None

    @property
    def results(self) -> list[Result]:
        return self.members + ([self.ensemble] if self.ensemble else [])

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "data": self.data,
            "images": self.members[0].metrics.count if self.members else 0,
            "classes": self.classes,
            "members": [m.as_dict(self.classes) for m in self.members],
            "ensemble": self.ensemble.as_dict(self.classes) if self.ensemble else None,
        }


def class_permutation(member: Network, classes: Sequence[str], data_name: str) -> Tensor | None:
    """Column order that puts ``member``'s outputs in the data's class order (``None`` when it already is).

    Raises :class:`DataError` when the class counts differ.
    """
    if member.num_classes != len(classes):
        raise DataError(
            f"{data_name} has {len(classes)} classes but {member.source} predicts {member.num_classes}; "
            "evaluate it on the data set it was trained for"
        )
    if not member.classes or list(member.classes) == list(classes) or _imagenet_ids(member, classes):
        return None
    if set(member.classes) != set(classes):
        raise DataError(class_mismatch(member.classes, classes, data_name, member.source))
    order = {c: i for i, c in enumerate(member.classes)}
    return torch.tensor([order[c] for c in classes], dtype=torch.int64)


def _imagenet_ids(member: Network, classes: Sequence[str]) -> bool:
    """An ImageNet folder names its classes by WordNet ID (n01440764, ...), in the order of the
    ImageNet networks' outputs, which carry the readable names."""
    return member.kind in ("torchvision", "timm") and all(re.fullmatch(r"n\d{8}", c) for c in classes)


def class_mismatch(network: Sequence[str], data: Sequence[str], data_name: str, source: str) -> str:
    """One line saying that a network and a data set name different classes, and how to line them up."""
    missing = [c for c in data if c not in set(network)]
    unknown = [c for c in network if c not in set(data)]

    def few(names: Sequence[str]) -> str:
        return ", ".join(names[:6]) + (f" ... ({len(names)} in all)" if len(names) > 6 else "")

    return (
        f"{source} was trained on other classes than {data_name} holds (data only: {few(missing)}; network only: "
        f"{few(unknown)}), so its error there would mean nothing; evaluate it on the data it was trained for, or name "
        f"the data's class folders as the network's classes, in its order: {few(list(network))}"
    )


def _adapt(images: ImageBatch, channels: int) -> ImageBatch:
    if isinstance(images, Tensor):
        return match_channels(images, channels, "the data")
    return [match_channels(img, channels, "an image") for img in images]


def evaluate(
    members: Sequence[Network],
    data: EvalData,
    protocol: EvalProtocol,
    *,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Run ``protocol`` for every member over ``data``; ``progress(n_done)`` is called after each batch."""
    if not members:
        raise UsageError("give at least one SOURCE to evaluate")
    if batch_size < 1:
        raise UsageError(f"`batch_size` must be positive, got {batch_size}")
    classes = list(data.classes)
    perms = [class_permutation(m, classes, data.description) for m in members]
    nets = [m.scorer() for m in members]
    results = [
        Result(m.name, m.source, m.model_name, protocol.describe(m.preprocess), Accumulator(len(classes)), extra={"kind": m.kind, **_opt(m)})
        for m in members
    ]
    ensemble = (
        Result("ensemble", "+".join(m.name for m in members), f"{len(members)} models", protocol.name, Accumulator(len(classes)))
        if len(members) > 1
        else None
    )
    done = 0
    for images, labels in data.batches(batch_size):
        batch_probs = []
        for member, net, perm, result in zip(members, nets, perms, results):
            start = time.perf_counter()
            probs = protocol.probabilities(net, _adapt(images, member.preprocess.channels), member.preprocess)
            result.seconds += time.perf_counter() - start
            if perm is not None:
                probs = probs[:, perm]
            result.metrics.update(probs, labels)
            batch_probs.append(probs)
        if ensemble is not None:
            ensemble.metrics.update(torch.stack(batch_probs).mean(dim=0), labels)
        done += len(labels)
        if progress is not None:
            progress(done)
    if ensemble is not None:
        ensemble.seconds = sum(r.seconds for r in results)
    return EvalReport(protocol.name, data.description, classes, results, ensemble)


def _opt(member: Network) -> dict[str, Any]:
    mode = member.metadata.get("optimize")
    return {"optimize": mode, "engine": member.metadata.get("engine")} if mode else {}
