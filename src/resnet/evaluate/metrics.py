"""Top-1 / top-5 error, per-class accuracy and the confusion matrix, accumulated batch by batch."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ..inference.per_class import per_class_accuracy, per_class_dict


class Accumulator:
    """Counts over the batches seen so far; errors are reported in percent as in the paper."""

    def __init__(self, num_classes: int, topk: int = 5) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.topk = min(topk, num_classes)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # rows: truth, columns: prediction
        self.topk_correct = 0
        self.count = 0

    def update(self, scores: Tensor, labels: Tensor) -> None:
        if scores.ndim != 2 or scores.shape[1] != self.num_classes or scores.shape[0] != labels.shape[0]:
            raise ValueError(f"scores {tuple(scores.shape)} do not match {self.num_classes} classes and {labels.shape[0]} labels")
        labels = labels.to(torch.int64)
        top = scores.topk(self.topk, dim=1).indices
        pred = top[:, 0]
        self.confusion += torch.bincount(labels * self.num_classes + pred, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes
        )
        self.topk_correct += int((top == labels[:, None]).any(dim=1).sum())
        self.count += int(labels.numel())

    @property
    def top1_correct(self) -> int:
        return int(self.confusion.diagonal().sum())

    @property
    def top1_error(self) -> float:
        return 100.0 * (1.0 - self.top1_correct / self.count) if self.count else float("nan")

    @property
    def top5_error(self) -> float:
        """Top-``topk`` error (top-5 unless there are fewer classes)."""
        return 100.0 * (1.0 - self.topk_correct / self.count) if self.count else float("nan")

    def per_class_accuracy(self) -> list[float | None]:
        """Accuracy (%) of each true class; ``None`` for classes absent from the data seen."""
        return per_class_accuracy(self.confusion)

    def summary(self, classes: Sequence[str] | None = None) -> dict[str, Any]:
        names = list(classes) if classes is not None else [str(i) for i in range(self.num_classes)]
        return {
            "images": self.count,
            "top1_err": round(self.top1_error, 4),
            "top5_err": round(self.top5_error, 4),
            "topk": self.topk,
            "correct": self.top1_correct,
            "per_class_acc": per_class_dict(self.confusion, names),
        }

