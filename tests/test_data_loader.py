"""TensorLoader: coverage, DDP shards, determinism per epoch, resuming mid-epoch."""

from __future__ import annotations

import pytest
import torch

from resnet.data import ArrayDataset, TensorLoader, fused_normalize
from resnet.errors import UsageError


def tagged_dataset(n: int = 103, channels: int = 3) -> ArrayDataset:
    """Image i carries i in its first two pixels (i = 256*p0 + p1), so batches reveal their sample ids."""
    images = torch.randint(0, 256, (n, channels, 8, 8), dtype=torch.uint8)
    ids = torch.arange(n)
    images[:, 0, 0, 0] = (ids // 256).to(torch.uint8)
    images[:, 0, 0, 1] = (ids % 256).to(torch.uint8)
    return ArrayDataset(images, ids % 10, [str(i) for i in range(10)], (0.5,) * channels, (0.25,) * channels)


def ids_of(loader: TensorLoader, x: torch.Tensor) -> list[int]:
    # Undo the normalisation to read back the tag pixels.
    raw = (x[:, 0, 0, :2].float() * 0.25 + 0.5) * 255
    raw = raw.round().long()
    return (raw[:, 0] * 256 + raw[:, 1]).tolist()


def epoch_ids(loader: TensorLoader, start: int = 0) -> list[list[int]]:
    return [ids_of(loader, x) for x, _ in loader.iter_from(start)]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_each_sample_exactly_once_per_epoch(shuffle: bool, drop_last: bool) -> None:
    ds = tagged_dataset()
    loader = TensorLoader(ds, 16, shuffle=shuffle, drop_last=drop_last)
    batches = epoch_ids(loader)
    flat = [i for b in batches for i in b]
    assert len(batches) == len(loader) == (103 // 16 if drop_last else 7)
    if drop_last:
        assert len(flat) == 96 and len(set(flat)) == 96
    else:
        assert sorted(flat) == list(range(103))
    assert (flat == list(range(len(flat)))) != shuffle


def test_outputs_normalised_labels_dtype_and_layout() -> None:
    ds = tagged_dataset(20)
    x, y = next(iter(TensorLoader(ds, 8, dtype=torch.bfloat16, channels_last=True)))
    assert x.dtype == torch.bfloat16 and x.shape == (8, 3, 8, 8) and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, fused_normalize(ds.images[:8], ds.mean, ds.std, torch.bfloat16))
    assert y.tolist() == ds.labels[:8].tolist()


def test_shuffle_deterministic_per_seed_and_epoch() -> None:
    ds = tagged_dataset()
    a, b = TensorLoader(ds, 10, shuffle=True, seed=1), TensorLoader(ds, 10, shuffle=True, seed=1)
    first = epoch_ids(a)
    assert epoch_ids(a) == first == epoch_ids(b)
    a.set_epoch(1)
    second = epoch_ids(a)
    assert second != first
    b.set_epoch(1)
    assert epoch_ids(b) == second
    assert epoch_ids(TensorLoader(ds, 10, shuffle=True, seed=2)) != first


def test_augmented_batches_reproduce_and_resume_mid_epoch() -> None:
    ds = tagged_dataset(64)
    loader = TensorLoader(ds, 8, shuffle=True, augment=True, seed=5)
    loader.set_epoch(3)
    full = [(x.clone(), y.clone()) for x, y in loader]
    resumed = TensorLoader(ds, 8, shuffle=True, augment=True, seed=5)
    resumed.set_epoch(3)
    tail = list(resumed.iter_from(5))
    assert len(tail) == len(full) - 5
    for (xa, ya), (xb, yb) in zip(full[5:], tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # Augmentation really changes images, and differently in another epoch.
    plain = TensorLoader(ds, 8, shuffle=True, seed=5)
    plain.set_epoch(3)
    assert not torch.equal(next(iter(plain))[0], full[0][0])
    resumed.set_epoch(4)
    assert not torch.equal(next(iter(resumed))[0], full[0][0])


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_shards_are_disjoint_and_equal_length(world_size: int) -> None:
    ds = tagged_dataset(103)
    shards = []
    for rank in range(world_size):
        loader = TensorLoader(ds, 8, shuffle=True, seed=9, rank=rank, world_size=world_size)
        loader.set_epoch(2)
        shards.append([i for b in epoch_ids(loader) for i in b])
        assert len(loader) == -(-(103 // world_size) // 8)
    sizes = {len(s) for s in shards}
    assert sizes == {103 // world_size}
    union = [i for s in shards for i in s]
    assert len(set(union)) == len(union) == world_size * (103 // world_size)


def test_bad_arguments() -> None:
    ds = tagged_dataset(10)
    with pytest.raises(UsageError, match="batch size"):
        TensorLoader(ds, 0)
    with pytest.raises(UsageError, match="rank 2"):
        TensorLoader(ds, 4, rank=2, world_size=2)
    with pytest.raises(UsageError, match="cannot start at batch 9"):
        TensorLoader(ds, 4).iter_from(9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_batches_equal_cpu_batches_without_augmentation() -> None:
    ds = tagged_dataset(40)
    cpu = list(TensorLoader(ds, 16, shuffle=True, seed=1))
    gpu = list(TensorLoader(ds, 16, shuffle=True, seed=1, device="cuda"))
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.device.type == "cuda"
        torch.testing.assert_close(xg.cpu(), xc, rtol=0, atol=1e-6)
        assert torch.equal(yg.cpu(), yc)
    aug = TensorLoader(ds, 16, shuffle=True, augment=True, seed=1, device="cuda")
    assert torch.equal(next(iter(aug))[0], next(iter(aug))[0])


def _mirrored(loader: TensorLoader, ds: ArrayDataset) -> list[bool]:
    """Which images of an unshuffled, uncropped epoch came out mirrored (each is one or the other)."""
    x = torch.cat([b for b, _ in loader])
    plain, mirror = fused_normalize(ds.images, ds.mean, ds.std), fused_normalize(ds.images.flip(-1), ds.mean, ds.std)
    same, flipped = (x == plain).flatten(1).all(1), (x == mirror).flatten(1).all(1)
    assert bool((same ^ flipped).all())
    return flipped.tolist()


def test_alternating_flip_mirrors_each_image_every_other_epoch() -> None:
    ds = tagged_dataset(200)
    loader = TensorLoader(ds, 50, augment=True, padding=0, alternate_flip=True, seed=3)
    epochs = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        epochs.append(_mirrored(loader, ds))
    assert 60 < sum(epochs[0]) < 140  # a fair coin per image for the first epoch
    assert epochs[1] == [not f for f in epochs[0]] and epochs[2] == epochs[0] and epochs[3] == epochs[1]
    coin = TensorLoader(ds, 50, augment=True, padding=0, seed=3)
    coin.set_epoch(1)
    assert _mirrored(coin, ds) != epochs[1]  # without it, a new coin each epoch


def test_alternating_flip_needs_the_crop_flip_augmentation() -> None:
    from dataclasses import replace

    from resnet.train.recipes import get_recipe

    with pytest.raises(UsageError, match="alternate_flip needs augment crop-flip"):
        replace(get_recipe("cifar-fast"), augment="none", alternate_flip=True).validate()
