"""Folders of ordinary photos for fine-tuning (the ``folder`` data set with the ``rrc`` augmentation).

``ROOT/train/<class>/<photo>`` plus an optional ``ROOT/val/`` (or ``test/``); without one, a stratified
fifth of ``train/`` is held out for validation. Photos of any size, format and colour mode are decoded
once (grey and CMYK become RGB), scaled so the shorter side is a little over the training crop and
kept in memory. Training batches: RandomResizedCrop at the input size + horizontal flip, drawn from
a generator seeded by ``(seed, epoch, rank, batch)`` so that a resumed run replays an uninterrupted
run; evaluation: resize the shorter side, center crop (the weights' own preprocessing).
"""

from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..data.defaults import default_preprocess
from ..data.loader import mix_seed
from ..data.preprocess import Preprocess, center_box, crop, network_input, resize_shorter
from ..data.scan import report_skipped, scan_folder, split_folder
from ..data.split import PHOTO_HOLDOUT_FRACTION, photo_holdout
from ..errors import DataError, UsageError
from .distributed import DistContext
from .recipes import Recipe

VAL_FRACTION = PHOTO_HOLDOUT_FRACTION  # held out of train/ when the folder has no val/ (data/split.py owns the rule)
_KEEP_OVER_CROP = 1.25  # photos are kept with their shorter side at this multiple of the crop (or the resize)


def photo_preprocess(recipe: Recipe, weights: Preprocess | None, size_set: bool) -> Preprocess:
    """The weights' preprocessing; recipe field ``image_size`` set to N (or no weights) scales it to an N-pixel crop.

    Weights that take images as they are (CIFAR nets: no resize) get the ImageNet resize ratio (256/224).
    """
    imagenet = default_preprocess("imagenet")
    base = weights or imagenet
    ratio = (base if base.resize else imagenet).resize_size / (base if base.resize else imagenet).crop_size
    crop = recipe.image_size if size_set or weights is None else base.crop_size
    return Preprocess(base.mean, base.std, crop, resize=max(crop, round(crop * ratio)), crop=crop,
                      interpolation=base.interpolation)


@dataclass(frozen=True)
class PhotoData:
    """What a photo folder gives the trainer (:func:`resnet.train.data.load_train_data` makes it a ``TrainData``)."""

    source: str
    classes: list[str]
    train_size: int
    batches_per_epoch: int
    stream: Any  # callable (epoch, start_batch) -> iterator of (x, y)
    test: tuple[str, int, Callable[[], Iterator[tuple[Tensor, Tensor]]]]  # (name, size, batches) of an EvalSet
    preprocess: Preprocess
    skipped: Callable[[], list[tuple[str, str]]]


def photo_data(data_dir: str | Path | None, recipe: Recipe, pre: Preprocess | None, *, seed: int, device: torch.device,
               dist: DistContext, strict: bool, eval_batch: int = 256) -> PhotoData:
    if data_dir is None:
        raise UsageError("`data` folder needs `data_dir` PHOTOS: a folder with train/<class>/<photo> (and optionally val/)")
    pre = pre or photo_preprocess(recipe, None, True)
    root = Path(data_dir).expanduser()
    train_dir = split_folder(root, "train")
    # Training photos keep some room for random crops; evaluation photos are scaled once, straight to the resize,
    # so that the trainer's validation score is the one `resnet eval` gives the run folder.
    train_side = math.ceil(max(pre.resize_size, pre.crop_size * _KEEP_OVER_CROP))
    classes, train_imgs, train_labels, skipped = _read_split(train_dir, train_side, pre, strict)
    if len(classes) < 2:
        raise DataError(f"{train_dir} has only {len(classes)} class folder ({', '.join(classes)}); a classifier needs at "
                        "least two: put each class's photos in train/<class>/")
    val_dir = _val_folder(root)
    if val_dir is not None:
        val_classes, val_imgs, val_labels, more = _read_split(val_dir, pre.resize_size, pre, strict)
        skipped += more
        if val_classes != classes:
            raise DataError(f"{val_dir} has the classes {', '.join(val_classes)} but {train_dir} has {', '.join(classes)}; "
                            "give both the same class folders")
        val_name = val_dir.name
    else:
        labels = torch.tensor(train_labels)
        keep, held = photo_holdout(labels, len(classes))
        val_imgs, val_labels = [train_imgs[i] for i in held.tolist()], [train_labels[i] for i in held.tolist()]
        train_imgs, train_labels = [train_imgs[i] for i in keep.tolist()], [train_labels[i] for i in keep.tolist()]
        val_name = f"a stratified {VAL_FRACTION:.0%} of train/"
    per_rank = recipe.batch_size // dist.world_size
    if len(train_imgs) // dist.world_size < per_rank:
        raise UsageError(f"batch_size {recipe.batch_size} is larger than the {len(train_imgs)} training photos; "
                         "lower it with `overrides` batch_size=N")
    stream, batches = _train_stream(train_imgs, torch.tensor(train_labels), recipe, pre, seed=seed, device=device, dist=dist)
    test = _eval_set(val_imgs, val_labels, pre, recipe, device=device, dist=dist, eval_batch=eval_batch, name=val_name)
    return PhotoData(source=str(root), classes=classes, train_size=len(train_imgs), batches_per_epoch=batches,
                     stream=stream, test=test, preprocess=pre, skipped=lambda: list(skipped))


def _val_folder(root: Path) -> Path | None:
    """``val/`` (or ``test/``) beside ``train/``, if there is one."""
    try:
        return split_folder(root, "val")
    except DataError:
        return None


def _read_split(folder: Path, keep_side: int, pre: Preprocess, strict: bool
                ) -> tuple[list[str], list[Tensor], list[int], list[tuple[str, str]]]:
    """Decode every photo under ``folder/<class>/``, scaled down so the shorter side is ``keep_side``."""
    from ..data.decode import decode_files

    scan = scan_folder(folder)
    arrays, reasons = decode_files([p for p, _ in scan.samples], channels=3)
    images: list[Tensor] = []
    labels: list[int] = []
    skipped = list(scan.skipped)
    for (path, label), array, reason in zip(scan.samples, arrays, reasons):
        if array is None:
            skipped.append((str(path), reason))
            continue
        images.append(_shrink(torch.from_numpy(array).permute(2, 0, 1).contiguous(), keep_side, pre.interpolation))
        labels.append(label)
    empty = [c for i, c in enumerate(scan.classes) if i not in set(labels)]
    if empty:
        raise DataError(f"class folder {folder / empty[0]} has no readable photo ({len(empty)} such class folder(s)); "
                        "add photos or remove the folder")
    for path, reason in skipped:  # after the check above, so a fatal error stays one line
        report_skipped(str(path), reason, strict=strict)
    return scan.classes, images, labels, skipped


def _shrink(img: Tensor, side: int, interpolation: str) -> Tensor:
    """Scale down (never up) so the shorter side is ``side``."""
    return resize_shorter(img, side, interpolation) if min(img.shape[-2:]) > side else img


def _train_stream(images: Sequence[Tensor], labels: Tensor, recipe: Recipe, pre: Preprocess, *, seed: int,
                  device: torch.device, dist: DistContext):  # noqa: ANN202 - (stream, batches per epoch)
    from torchvision.transforms import v2

    augment = v2.Compose([
        v2.RandomResizedCrop(pre.crop_size, scale=(recipe.min_crop_scale, 1.0),
                             interpolation=v2.InterpolationMode(pre.interpolation), antialias=True),
        v2.RandomHorizontalFlip(),
    ])
    per_rank = recipe.batch_size // dist.world_size
    n = len(images)
    batches = (n // dist.world_size) // per_rank

    def stream(epoch: int, start: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch)))
        mine = order[: (n // dist.world_size) * dist.world_size][dist.rank :: dist.world_size]
        for b in range(start, batches):
            idx = mine[b * per_rank : (b + 1) * per_rank]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(mix_seed(seed, epoch, dist.rank, b, 11))
                x = torch.stack([augment(images[i]) for i in idx.tolist()])
            x = network_input(x, pre)
            if recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x.to(device, non_blocking=True), labels[idx].to(device)

    return stream, batches


def _eval_set(images: Sequence[Tensor], labels: Sequence[int], pre: Preprocess, recipe: Recipe, *, device: torch.device,
              dist: DistContext, eval_batch: int, name: str
              ) -> tuple[str, int, Callable[[], Iterator[tuple[Tensor, Tensor]]]]:
    """Resize + center crop once; batches normalised on the fly (this rank's share)."""
    def view(img: Tensor) -> Tensor:
        img = resize_shorter(img, pre.resize_size, pre.interpolation)
        return crop(img, center_box(*img.shape[-2:], pre.crop_size))

    x_all = torch.stack([view(img) for img in images])[dist.rank :: dist.world_size]
    y_all = torch.tensor(list(labels))[dist.rank :: dist.world_size]

    def batches() -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(0, len(x_all), eval_batch):
            x = network_input(x_all[i : i + eval_batch], pre)
            if recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x.to(device), y_all[i : i + eval_batch].to(device)

    return name, len(images), batches
