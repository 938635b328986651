"""What the trainer reads: a resumable stream of augmented training batches and the evaluation sets.

Two paths. Small images (CIFAR, digits, folders of small images) live decoded in one uint8 tensor on
the training device and are augmented there in whole batches. ImageNet-layout folders are decoded per
image in DataLoader worker processes. Both produce the same batch sequence for a given
``(seed, epoch, batch)``, which is what makes a resumed run reproduce an uninterrupted run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import Tensor

from ..data import ArrayDataset, TensorLoader, holdout_split, fused_normalize
from ..data.loader import mix_seed
from ..data.preprocess import Preprocess
from ..data.load import open_arrays
from ..data.registry import ALL_DATASETS, ARRAY_DATASETS, FOLDER_DATASETS, data_set, existing_dir
from ..errors import DataError, UsageError
from .distributed import DistContext
from .photos import photo_data
from .recipes import Recipe

if TYPE_CHECKING:
    from ..data.folder import ImageFolderDataset

__all__ = ["ALL_DATASETS", "ARRAY_DATASETS", "FOLDER_DATASETS", "EvalSet", "TrainData", "load_train_data"]


@dataclass
class EvalSet:
    """Images to evaluate on, as normalised batches; each rank takes every ``world``-th image."""

    name: str
    size: int
    batches: Any  # callable () -> iterator of (x, y) for this rank's share

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.batches()


@dataclass
class TrainData:
    name: str
    source: str
    classes: list[str]
    in_chans: int
    train_size: int
    batches_per_epoch: int
    holdout: EvalSet | None
    test: EvalSet | None
    stream: Any  # callable (epoch, start_batch) -> iterator of (x, y)
    preprocess: Preprocess  # what the network expects, written into the checkpoint metadata
    skipped: Any = None  # callable () -> list of (path, reason)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def mean(self) -> tuple[float, ...]:
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.preprocess.std

    @property
    def image_size(self) -> int:
        """The side of the training images the network sees."""
        return self.preprocess.crop_size


def load_train_data(
    name: str, data_dir: str | Path | None, recipe: Recipe, *, seed: int, device: torch.device, dist: DistContext,
    dtype: torch.dtype, strict: bool = False, eval_batch: int = 500, preprocess: Any = None,
) -> TrainData:
    source = data_set(name)
    existing_dir(data_dir)
    if recipe.batch_size % dist.world_size:
        raise UsageError(
            f"batch_size {recipe.batch_size} does not split evenly over {dist.world_size} processes; "
            f"pick a multiple of {dist.world_size} (`overrides` batch_size=...)"
        )
    if name == "folder" and recipe.augment == "rrc":  # photos of any size, the weights' preprocessing (fine-tuning)
        photos = photo_data(data_dir, recipe, preprocess, seed=seed, device=device, dist=dist, strict=strict)
        return TrainData(name="folder", source=photos.source, classes=photos.classes, in_chans=3,
                         train_size=photos.train_size, batches_per_epoch=photos.batches_per_epoch, holdout=None,
                         test=EvalSet(*photos.test), stream=photos.stream, preprocess=photos.preprocess,
                         skipped=photos.skipped)
    if source.kind == "folder":
        return _folder_data(name, data_dir, recipe, seed=seed, device=device, dist=dist, strict=strict)
    return _array_data(name, data_dir, recipe, seed=seed, device=device, dist=dist, dtype=dtype, strict=strict,
                       eval_batch=eval_batch)


def _measured_preprocess(mean: Sequence[float], std: Sequence[float], size: int, name: str) -> Preprocess:
    """The preprocessing of a network trained on images as they are (no resize, no crop)."""
    try:
        return Preprocess(tuple(mean), tuple(std), size)
    except ValueError as err:  # e.g. a channel with one value everywhere: std 0
        raise DataError(f"{name}: the training images cannot be normalised ({err}); check the images") from None


# -- in-memory data ---------------------------------------------------------------------------------
def _array_data(
    name: str, data_dir: str | Path | None, recipe: Recipe, *, seed: int, device: torch.device, dist: DistContext,
    dtype: torch.dtype, strict: bool, eval_batch: int,
) -> TrainData:
    full = open_arrays(name, "train", data_dir, strict=strict)
    test = open_arrays(name, "test", data_dir, strict=strict)
    if recipe.holdout >= len(full):
        raise UsageError(
            f"holdout {recipe.holdout} leaves no training images ({len(full)} in {name}); lower it with `overrides` holdout=N"
        )
    train, holdout = holdout_split(full, recipe.holdout, seed=0) if recipe.holdout else (full, None)
    per_rank = recipe.batch_size // dist.world_size
    if len(train) // dist.world_size < per_rank:
        raise UsageError(
            f"batch_size {recipe.batch_size} is larger than the {len(train)} training images; lower it with `overrides` batch_size=N"
        )
    loader = TensorLoader(
        train, per_rank, shuffle=True, drop_last=True, augment=recipe.augment == "crop-flip", device=device,
        seed=seed, rank=dist.rank, world_size=dist.world_size, channels_last=recipe.channels_last, dtype=dtype,
        padding=recipe.padding, alternate_flip=recipe.alternate_flip,
    )
    flip_only = recipe.augment == "flip"

    def stream(epoch: int, start: int) -> Iterator[tuple[Tensor, Tensor]]:
        loader.set_epoch(epoch)
        for b, (x, y) in enumerate(loader.iter_from(start), start):
            if flip_only:
                g = torch.Generator(device=x.device).manual_seed(mix_seed(seed, epoch, dist.rank, b, 7))
                mask = torch.rand(len(x), generator=g, device=x.device) < 0.5
                x = torch.where(mask[:, None, None, None], x.flip(-1), x)
            yield x, y

    def eval_set(ds: ArrayDataset | None, label: str) -> EvalSet | None:
        if ds is None or len(ds) == 0:
            return None
        images = ds.images[dist.rank :: dist.world_size].to(device)
        labels = ds.labels[dist.rank :: dist.world_size].to(device)

        def batches() -> Iterator[tuple[Tensor, Tensor]]:
            for i in range(0, len(images), eval_batch):
                x = fused_normalize(images[i : i + eval_batch], full.mean, full.std, dtype)
                if recipe.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                yield x, labels[i : i + eval_batch]

        return EvalSet(label, len(ds), batches)

    if test.num_classes != full.num_classes:
        raise DataError(f"{name}: the test split has {test.num_classes} classes but the training split {full.num_classes}")
    return TrainData(
        name=name, source=str(full.source), classes=list(full.classes), in_chans=full.channels, train_size=len(train),
        batches_per_epoch=len(loader), holdout=eval_set(holdout, "holdout"), test=eval_set(test, "test"), stream=stream,
        preprocess=_measured_preprocess(full.mean, full.std, full.image_size, name),
        skipped=lambda: list(full.extra.get("skipped", [])) + list(test.extra.get("skipped", [])),
    )


# -- ImageNet-layout folders ------------------------------------------------------------------------
class _ResumableBatches(torch.utils.data.Sampler[list[int]]):
    """Batches of indices: a permutation fixed by ``(seed, epoch)``, this rank's share, from a start batch."""

    def __init__(self, indices: Sequence[int], batch: int, *, seed: int, rank: int, world: int, shuffle: bool) -> None:
        self.indices = torch.as_tensor(list(indices), dtype=torch.int64)
        self.batch, self.seed, self.rank, self.world, self.shuffle = batch, seed, rank, world, shuffle
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        per_rank = len(self.indices) // self.world
        return per_rank // self.batch if self.shuffle else -(-per_rank // self.batch)

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.indices)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))) if self.shuffle else torch.arange(n)
        mine = self.indices[order[: (n // self.world) * self.world][self.rank :: self.world]]
        for b in range(self.start, len(self)):
            yield mine[b * self.batch : (b + 1) * self.batch].tolist()


def _folder_sets(name: str, data_dir: str | Path, size: int, strict: bool
                 ) -> tuple["ImageFolderDataset", "ImageFolderDataset", "ImageFolderDataset | None", Preprocess]:
    """The training, hold-out and validation (if any) folders with the paper's preprocessing at ``size`` pixels."""
    from ..data.folder import ImageFolderDataset
    from ..data.transforms import imagenet_eval_transform, imagenet_sizes, imagenet_train_transform

    mean, std = data_set(name).published_stats()
    scale, resize = imagenet_sizes(size)
    train_tf = imagenet_train_transform(scale=scale, crop=size, mean=mean, std=std)
    eval_tf = imagenet_eval_transform(resize=resize, crop=size, mean=mean, std=std)
    train_ds = ImageFolderDataset(data_dir, "train", transform=train_tf, strict=strict)
    holdout_ds = ImageFolderDataset(data_dir, "train", transform=eval_tf, strict=strict)
    try:
        test_ds: ImageFolderDataset | None = ImageFolderDataset(data_dir, "val", transform=eval_tf, strict=strict)
    except (DataError, UsageError):
        test_ds = None
    return train_ds, holdout_ds, test_ds, Preprocess(tuple(mean), tuple(std), size, resize=resize, crop=size)


def _folder_data(
    name: str, data_dir: str | Path | None, recipe: Recipe, *, seed: int, device: torch.device, dist: DistContext,
    strict: bool,
) -> TrainData:
    from ..data.folder import FolderLoader, ImageFolderDataset

    if data_dir is None:
        raise UsageError(f"`data` {name} needs `data_dir` PATH: a folder with train/<class>/<image> and val/<class>/<image>")
    size = recipe.image_size
    train_ds, holdout_ds, test_ds, pre = _folder_sets(name, data_dir, size, strict)
    n = len(train_ds)
    if n == 0:
        raise DataError(f"{data_dir}/train holds no images; put them in train/<class>/<image>")
    holdout_n = min(recipe.holdout, n // 10) if recipe.holdout else 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    holdout_idx = sorted(perm[:holdout_n].tolist())
    train_idx = sorted(perm[holdout_n:].tolist())
    per_rank = recipe.batch_size // dist.world_size
    if len(train_idx) // dist.world_size < per_rank:
        raise UsageError(f"batch_size {recipe.batch_size} is larger than the {len(train_idx)} training images; lower it")
    sampler = _ResumableBatches(train_idx, per_rank, seed=seed, rank=dist.rank, world=dist.world_size, shuffle=True)
    pin = device.type == "cuda"
    loader = FolderLoader(train_ds, seed=seed, batch_sampler=sampler, num_workers=recipe.workers, pin_memory=pin)

    def to_device(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = x.to(device, non_blocking=True)
        if recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(device, non_blocking=True)

    def stream(epoch: int, start: int) -> Iterator[tuple[Tensor, Tensor]]:
        sampler.epoch, sampler.start = epoch, start
        loader.set_epoch(epoch)
        for x, y in loader:
            yield to_device(x, y)

    def eval_set(ds: ImageFolderDataset | None, indices: Sequence[int], label: str) -> EvalSet | None:
        if ds is None or not indices:
            return None
        mine = list(indices)[dist.rank :: dist.world_size]
        batch_sampler = [mine[i : i + per_rank] for i in range(0, len(mine), per_rank)]
        eval_loader = FolderLoader(ds, seed=seed, batch_sampler=batch_sampler, num_workers=recipe.workers, pin_memory=pin)
        return EvalSet(label, len(indices), lambda: (to_device(x, y) for x, y in eval_loader))

    def skipped() -> list[tuple[str, str]]:
        seen = {p: r for ds in (train_ds, holdout_ds, test_ds) if ds is not None for p, r in ds.skipped}
        return sorted(seen.items())

    return TrainData(
        name=name, source=str(data_dir), classes=list(train_ds.classes), in_chans=3, train_size=len(train_idx), batches_per_epoch=len(sampler),
        holdout=eval_set(holdout_ds, holdout_idx, "holdout"),
        test=eval_set(test_ds, range(len(test_ds)) if test_ds is not None else [], "test"), stream=stream,
        preprocess=pre, skipped=skipped,
    )
