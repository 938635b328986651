"""holdout_split and the digits data set."""

from __future__ import annotations

import pytest
import torch

from resnet.data import ArrayDataset, holdout_split, load_arrays
from resnet.errors import UsageError


def labelled(counts: list[int]) -> ArrayDataset:
    labels = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    images = torch.arange(len(labels)).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).remainder(256).to(torch.uint8).contiguous()
    return ArrayDataset(images, labels, [str(k) for k in range(len(counts))], (0.5,), (0.2,))


def test_holdout_is_stratified_disjoint_and_deterministic() -> None:
    ds = labelled([300, 200, 100, 400])
    train, hold = holdout_split(ds, 100, seed=3)
    assert len(hold) == 100 and len(train) == 900
    assert torch.bincount(hold.labels).tolist() == [30, 20, 10, 40]
    # Reconstruct which samples went where through the images (image i holds i mod 256 and its label).
    train_again, hold_again = holdout_split(ds, 100, seed=3)
    assert torch.equal(hold.images, hold_again.images) and torch.equal(train.labels, train_again.labels)
    _, other = holdout_split(ds, 100, seed=4)
    assert not torch.equal(other.labels, hold.labels) or not torch.equal(other.images, hold.images)
    assert hold.mean == ds.mean and train.std == ds.std


def test_holdout_partitions_the_indices() -> None:
    ds = labelled([37, 51, 12])
    ds.images = torch.arange(len(ds)).view(-1, 1, 1, 1).to(torch.uint8)  # 100 < 256: unique ids
    train, hold = holdout_split(ds, 17)
    ids_train, ids_hold = train.images.flatten().tolist(), hold.images.flatten().tolist()
    assert sorted(ids_train + ids_hold) == list(range(100)) and not set(ids_train) & set(ids_hold)
    assert ids_hold == sorted(ids_hold) and ids_train == sorted(ids_train)  # original order kept
    assert torch.equal(hold.labels, ds.labels[torch.tensor(ids_hold)])
    assert sum(torch.bincount(hold.labels, minlength=3).tolist()) == 17


@pytest.mark.parametrize("bad", [0, -1, 100, 1000, 2.5, True])
def test_holdout_rejects_invalid_sizes(bad: object) -> None:
    with pytest.raises(UsageError, match="hold-out size"):
        holdout_split(labelled([50, 50]), bad)  # type: ignore[arg-type]


def test_digits_shapes_split_and_stats() -> None:
    train, test = load_arrays("digits", "train"), load_arrays("digits", "test")
    assert tuple(train.images.shape) == (1437, 1, 32, 32) and tuple(test.images.shape) == (360, 1, 32, 32)
    assert train.images.dtype == torch.uint8 and train.classes == [str(d) for d in range(10)]
    assert int(train.images.max()) > 200 and int(train.images.min()) == 0
    # Stratified: every class keeps its 20 % share in the test split (within rounding).
    all_counts = torch.bincount(torch.cat([train.labels, test.labels]))
    test_counts = torch.bincount(test.labels)
    assert ((test_counts - all_counts * 0.2).abs() <= 1).all()
    # Fixed: a second load gives the same split, and train/test share no image.
    assert torch.equal(load_arrays("digits", "test").images, test.images)
    train_set = {bytes(img.flatten().tolist()) for img in train.images}
    assert not any(bytes(img.flatten().tolist()) in train_set for img in test.images)
    assert train.mean == test.mean and len(train.mean) == 1
    expected = train.images.double().mean().item() / 255
    assert train.mean[0] == pytest.approx(expected, abs=1e-9)
