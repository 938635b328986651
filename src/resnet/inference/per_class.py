"""Per-class accuracy from a confusion matrix: one computation for the trainer's end-of-run report and
``resnet eval`` (:class:`resnet.evaluate.metrics.Accumulator`), and how many classes are worth a printed table."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor

#: Per-class accuracy is printed (training and ``resnet eval``) for at most this many classes; JSON always has it.
PER_CLASS_PRINTED = 100


def confusion_of(scores_of: Callable[[Tensor], Tensor], batches: Iterable[tuple[Tensor, Tensor]], num_classes: int,
                 reduce: Callable[[Tensor], object] | None = None) -> Tensor:
    """The confusion matrix (rows: truth, columns: top-1 prediction) of ``scores_of(x)`` (scores or
    log-probabilities ``[N, classes]``) over every ``(x, labels)`` of ``batches``; ``reduce`` sums it in place over
    processes (each saw its share)."""
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    with torch.inference_mode():
        for x, y in batches:
            pred = scores_of(x).argmax(1).cpu()
            confusion += torch.bincount(y.cpu().to(torch.int64) * num_classes + pred,
                                        minlength=num_classes**2).view(num_classes, num_classes)
    if reduce is not None:
        reduce(confusion)
    return confusion


def per_class_accuracy(confusion: Tensor) -> list[float | None]:
    """Accuracy (%) of each true class; ``None`` for classes absent from the data."""
    support = confusion.sum(dim=1)
    correct = confusion.diagonal()
    return [None if int(s) == 0 else 100.0 * int(c) / int(s) for c, s in zip(correct, support)]


def per_class_dict(confusion: Tensor, classes: Sequence[str]) -> dict[str, float | None]:
    """``{class: accuracy %}`` rounded as the JSON reports write it (``None``: no image of that class)."""
    return {str(n): (None if a is None else round(a, 3)) for n, a in zip(classes, per_class_accuracy(confusion))}
