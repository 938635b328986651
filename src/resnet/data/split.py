"""Stratified hold-out split: the paper's 45k/5k train/validation split of the CIFAR training set."""

from __future__ import annotations

import torch

from ..errors import UsageError
from .arrays import ArrayDataset


def holdout_split(ds: ArrayDataset, n_holdout: int, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """``(train_part, holdout_part)``, disjoint, each in the original order.

    Each class gives the hold-out its share of ``n_holdout`` in proportion to its size (largest
    remainders settle the rounding), drawn at random from a generator seeded with ``seed`` alone, so the
    same call always returns the same split. Both parts keep ``ds``'s normalisation statistics.
    """
    if isinstance(n_holdout, bool) or not isinstance(n_holdout, int) or not 0 < n_holdout < len(ds):
        raise UsageError(
            f"the hold-out size must be an integer between 1 and {len(ds) - 1} "
            f"(the data set has {len(ds)} images), got {n_holdout!r}"
        )
    train_index, holdout_index = stratified_indices(ds.labels, n_holdout, seed)
    train, holdout = ds.subset(train_index), ds.subset(holdout_index)
    train.extra = {**ds.extra, "holdout": {"part": "train", "n_holdout": n_holdout, "seed": seed}}
    holdout.extra = {**ds.extra, "holdout": {"part": "holdout", "n_holdout": n_holdout, "seed": seed}}
    return train, holdout


#: The share of a photo folder's train/ held out for validation when it has no val/ (or test/) beside it.
PHOTO_HOLDOUT_FRACTION = 0.2


def photo_holdout(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices of a photo folder's train/ without val/: a stratified :data:`PHOTO_HOLDOUT_FRACTION`
    (at least one photo per class), always the same for the same files — fine-tuning validates on it, and
    ``resnet eval`` of the run scores the same photos."""
    return stratified_indices(labels, max(num_classes, round(PHOTO_HOLDOUT_FRACTION * len(labels))), seed=0)


def stratified_indices(labels: torch.Tensor, n_holdout: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices into ``labels``, ascending: each class gives its share of ``n_holdout``."""
    labels = labels.cpu()
    classes, counts = torch.unique(labels, return_counts=True)
    quotas = _proportional_quotas(counts, n_holdout)
    generator = torch.Generator().manual_seed(seed)
    picked: list[torch.Tensor] = []
    for cls, quota in zip(classes.tolist(), quotas.tolist()):
        members = torch.nonzero(labels == cls).flatten()
        chosen = torch.randperm(len(members), generator=generator)[:quota]
        picked.append(members[chosen])
    holdout_mask = torch.zeros(len(labels), dtype=torch.bool)
    holdout_mask[torch.cat(picked)] = True
    return torch.nonzero(~holdout_mask).flatten(), torch.nonzero(holdout_mask).flatten()


def _proportional_quotas(counts: torch.Tensor, total: int) -> torch.Tensor:
    exact = counts.double() * total / counts.sum().double()
    quotas = exact.floor().long()
    short = total - int(quotas.sum())
    if short:
        # Largest remainder first; ties go to the lower class index, so the result is deterministic.
        order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - quotas[i]).item(), i))
        for i in order[:short]:
            quotas[i] += 1
    return torch.minimum(quotas, counts)


def spread_indices(total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(total)``, starting at 0."""
    return [i * total // n for i in range(n)]
