"""Evaluation data: decoded arrays (CIFAR, digits, small folders) or image files decoded batch by batch.

A named array data set goes through :func:`resnet.data.load.open_arrays` (decoded once, cached);
``imagenet`` or a bare ``data_dir`` is an ImageNet-layout folder (``ROOT/<split>/<class>/<image>``) whose images
may differ in size, so they are decoded per batch and handed to the protocols as a list. Evaluation
reads such folders itself rather than through a training data set because it must fail on an image
that cannot be decoded (naming it) instead of skipping it, which would change the error figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from ..data.decode import read_image
from ..data.load import open_arrays
from ..data.registry import ALL_DATASETS, ARRAY_DATASETS, existing_dir
from ..data.scan import scan_folder, split_folder
from ..data.split import PHOTO_HOLDOUT_FRACTION, photo_holdout, spread_indices
from ..errors import DataError, UsageError
from ..inference.protocols import ImageBatch, stack_or_list


class EvalData:
    """Labelled images to evaluate on, in a fixed order."""

    classes: list[str]
    description: str

    def __len__(self) -> int:
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[tuple[ImageBatch, Tensor]]:
        raise NotImplementedError


@dataclass
class ArrayEvalData(EvalData):
    images: Tensor  # uint8 [N, C, H, W]
    labels: Tensor
    classes: list[str]
    description: str

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int) -> Iterator[tuple[ImageBatch, Tensor]]:
        for start in range(0, len(self), batch_size):
            yield self.images[start : start + batch_size], self.labels[start : start + batch_size]


@dataclass
class FileEvalData(EvalData):
    samples: list[tuple[Path, int]]
    classes: list[str]
    description: str
    channels: int = 3

    def __len__(self) -> int:
        return len(self.samples)

    def batches(self, batch_size: int) -> Iterator[tuple[ImageBatch, Tensor]]:
        for start in range(0, len(self), batch_size):
            chunk = self.samples[start : start + batch_size]
            images = [read_image(path, self.channels) for path, _ in chunk]
            labels = torch.tensor([label for _, label in chunk], dtype=torch.int64)
            yield stack_or_list(images), labels


def open_eval_data(
    name: str | None, data_dir: str | None, split: str | None = None, *, limit: int | None = None, channels: int = 3
) -> EvalData:
    """Open the data set ``name`` and / or the folder ``data_dir``; errors are one-line :class:`DataError` /
    :class:`UsageError`.

    ``split=None`` is the evaluation split: ``test`` (``val`` in a folder that has no ``test/``).
    """
    if name is None and data_dir is None:
        raise UsageError("name the evaluation data with `data` NAME (cifar10, cifar100, digits, imagenet) or `data_dir` PATH")
    if limit is not None and limit < 1:
        raise UsageError(f"`limit` must be a positive number of images, got {limit}")
    existing_dir(data_dir)
    if name is not None and name not in ALL_DATASETS:
        raise UsageError(f"unknown `data` {name!r}; choose one of {', '.join(ALL_DATASETS)}, or pass `data_dir`")
    if name in ARRAY_DATASETS:
        data = _open_arrays(name, data_dir, split or "test")  # type: ignore[arg-type]
    elif data_dir is None:
        raise UsageError(f"`data` {name} needs `data_dir` PATH (a folder laid out as PATH/{split or 'val'}/<class>/<image>)")
    else:
        data = _open_folder(Path(data_dir), split, channels)
    if len(data) == 0:
        raise DataError(f"{data.description} holds no images; check `data_dir` and `split`")
    if limit is not None and limit < len(data):
        data = _take(data, limit)
    return data


def open_photo_holdout(data_dir: str | Path, *, limit: int | None = None, channels: int = 3) -> EvalData:
    """The photos a fine-tune on ``data_dir`` validated on when the folder has no ``val/`` or ``test/``: the same
    stratified share of ``train/`` (:func:`~resnet.data.split.photo_holdout`), never its training photos."""
    root = Path(data_dir)
    scan = scan_folder(split_folder(root, "train", fallback=False))
    _, held = photo_holdout(torch.tensor([label for _, label in scan.samples]), len(scan.classes))
    data: EvalData = FileEvalData([scan.samples[i] for i in held.tolist()], scan.classes,
                                  f"image folder {scan.root}, the {PHOTO_HOLDOUT_FRACTION:.0%} held out in training",
                                  channels)
    return _take(data, limit) if limit is not None and limit < len(data) else data


def has_eval_split(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` has a ``test/`` or ``val/`` folder (else a fine-tune held photos out of ``train/``)."""
    return any((Path(data_dir) / split).is_dir() for split in ("test", "val"))


def _open_arrays(name: str, data_dir: str | None, split: str) -> EvalData:
    try:
        # strict: an image that cannot be decoded stops evaluation (naming it); skipping it would change the figures.
        ds = open_arrays(name, split, data_dir, strict=True)
    except (ValueError, KeyError) as err:  # the loader's own ResNetErrors pass through unchanged
        raise UsageError(f"cannot load `data` {name} `split` {split}: {err}") from None
    where = f" from {data_dir}" if data_dir else ""
    return ArrayEvalData(ds.images, ds.labels.to(torch.int64), [str(c) for c in ds.classes], f"{name} {split}{where}")


def _open_folder(root: Path, split: str | None, channels: int) -> EvalData:
    """``root/<split>`` (``None``: test/ else val/; ``root`` itself when it has no split folders). Files that are
    not images by extension are left out; an image that cannot be decoded (empty ones too) stops evaluation
    when it is read, naming the file (skipping it would change the figures)."""
    scan = scan_folder(split_folder(root, split, fallback=split is None, classes_at_root=True), keep_empty=True)
    return FileEvalData(scan.samples, scan.classes, f"image folder {scan.root}", channels)


def _take(data: EvalData, n: int) -> EvalData:
    # Folders list images class by class, so the first n would often be one or two classes;
    # every (total/n)-th image keeps the class balance of the whole set.
    index = spread_indices(len(data), n)
    label = f"{data.description}, {n} of {len(data)} spread evenly"
    if isinstance(data, ArrayEvalData):
        idx = torch.tensor(index, dtype=torch.int64)
        return ArrayEvalData(data.images[idx], data.labels[idx], data.classes, label)
    if isinstance(data, FileEvalData):
        return FileEvalData([data.samples[i] for i in index], data.classes, label, data.channels)
    raise TypeError(type(data).__name__)


def data_or_recorded(name: str | None, data_dir: str | None, member: Any) -> tuple[str | None, str | None]:
    """Which data ``member`` is scored on: ``name`` / ``data_dir`` as given; neither given, the data set its run
    recorded (its test split; an image folder by its folder alone). ``(None, None)`` when nothing usable is recorded:
    :func:`open_eval_data` then asks for the data."""
    from ..inference.calibration import recorded_data

    if name is not None or data_dir is not None:
        return name, data_dir
    record = recorded_data(member)
    if record is None:
        return None, None
    if record.image_folder:  # imagenet layout, or the photos of a fine-tune: read per image, the run's preprocessing
        return None, record.data_dir
    return record.dataset, record.data_dir


def open_scored_data(name: str | None, data_dir: str | None, split: str | None, member: Any, *, limit: int | None = None,
                     channels: int = 3, recorded: bool = False) -> EvalData:
    """The data ``member`` is scored on (``name`` / ``data_dir`` from :func:`data_or_recorded`; ``recorded``: neither
    was given). A photo fine-tune's folder without val/ or test/: the photos its training held out."""
    from ..data.registry import IMAGE_FOLDER

    if recorded and name is None and split is None and data_dir is not None and member.metadata.get("dataset") == IMAGE_FOLDER \
            and Path(data_dir).is_dir() and not has_eval_split(data_dir):
        return open_photo_holdout(data_dir, limit=limit, channels=channels)
    return open_eval_data(name, data_dir, split, limit=limit, channels=channels)
