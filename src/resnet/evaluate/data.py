"""Evaluation data: decoded arrays (CIFAR, digits, small folders) or image files decoded batch by batch.

``--data NAME`` goes through :func:`resnet.data.load_arrays` (decoded once, cached); ``--data imagenet``
or a bare ``--data-dir`` is an ImageNet-layout folder (``ROOT/<split>/<class>/<image>``) whose images
may differ in size, so they are decoded per batch and handed to the protocols as a list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import Tensor

from ..errors import DataError, UsageError
from .images import read_image
from .protocols import ImageBatch

ARRAY_DATASETS = ("cifar10", "cifar100", "digits", "folder")
FOLDER_DATASETS = ("imagenet",)


class EvalData:
    """Labelled images to evaluate on, in a fixed order."""

    classes: list[str]
    description: str

    def __len__(self) -> int:
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[tuple[ImageBatch, Tensor]]:
        raise NotImplementedError

    def head(self, n: int) -> ImageBatch:
        """The first ``n`` images (calibration data for ``--optimize int8``)."""
        return next(iter(self.batches(n)))[0]


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
    name: str | None, data_dir: str | None, split: str = "test", *, limit: int | None = None, channels: int = 3
) -> EvalData:
    """Open ``--data NAME`` / ``--data-dir PATH``; errors are one-line :class:`DataError` / :class:`UsageError`."""
    if name is None and data_dir is None:
        raise UsageError("name the evaluation data with --data NAME (cifar10, cifar100, digits, imagenet) or --data-dir PATH")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be a positive number of images, got {limit}")
    if data_dir is not None and not Path(data_dir).exists():
        raise DataError(f"data folder {data_dir} does not exist; check --data-dir")
    if name is not None and name not in ARRAY_DATASETS + FOLDER_DATASETS:
        raise UsageError(f"unknown --data {name!r}; choose one of {', '.join(ARRAY_DATASETS + FOLDER_DATASETS)}, or pass --data-dir")
    data = _open_arrays(name, data_dir, split) if name in ARRAY_DATASETS else _open_folder(Path(data_dir or "."), split, channels)  # type: ignore[arg-type]
    if len(data) == 0:
        raise DataError(f"{data.description} holds no images; check --data-dir and --split")
    if limit is not None and limit < len(data):
        data = _take(data, limit)
    return data


def _open_arrays(name: str, data_dir: str | None, split: str) -> EvalData:
    try:
        from ..data import load_arrays
    except ImportError:
        raise UsageError(f"--data {name} needs resnet.data.load_arrays, which this build lacks; pass an image folder with --data-dir") from None
    ds = load_arrays(name, split=split, data_dir=data_dir)
    where = f" from {data_dir}" if data_dir else ""
    return ArrayEvalData(ds.images, ds.labels.to(torch.int64), [str(c) for c in ds.classes], f"{name} {split}{where}")


def _open_folder(root: Path, split: str, channels: int) -> EvalData:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; --data-dir takes a folder of class folders (ROOT/{split}/<class>/<image>)")
    try:
        from ..data import ImageFolderDataset
    except ImportError:
        raise UsageError("--data-dir needs resnet.data.ImageFolderDataset, which this build lacks") from None
    ds = ImageFolderDataset(root, split)
    samples = [(Path(p), int(label)) for p, label in ds.samples]
    return FileEvalData(samples, [str(c) for c in ds.classes], f"image folder {root} ({split})", channels)


def _take(data: EvalData, n: int) -> EvalData:
    if isinstance(data, ArrayEvalData):
        return ArrayEvalData(data.images[:n], data.labels[:n], data.classes, f"{data.description}, first {n}")
    if isinstance(data, FileEvalData):
        return FileEvalData(data.samples[:n], data.classes, f"{data.description}, first {n}", data.channels)
    raise TypeError(type(data).__name__)


def stack_or_list(images: Sequence[Tensor]) -> ImageBatch:
    """Same-sized images travel as one tensor, so protocols transform them in one call."""
    if len({tuple(img.shape) for img in images}) == 1:
        return torch.stack(list(images))
    return list(images)
