"""ImageNet-layout folders (``ROOT/<split>/<class>/<image>``) decoded per image in DataLoader workers.

A training run over a million files should not die on one bad JPEG: corrupt, truncated, empty and
non-image files are reported by path and left out of their batch; ``dataset.skipped`` lists them
(``strict=True`` raises :class:`DataError` at the first instead).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler
from torch.utils.data import default_collate, get_worker_info

from ..errors import UsageError
from ..models.data_config import IMAGENET_DATA_CONFIG
from .decode import DecodeFailure, decode_image_tensor
from .loader import mix_seed
from .scan import report_skipped, scan_folder, split_folder
from .transforms import imagenet_eval_transform, imagenet_sizes, imagenet_train_transform


@dataclass(frozen=True)
class SkippedSample:
    """Stands in, inside a batch, for an image that could not be decoded."""

    path: str
    reason: str


class ImageFolderDataset(Dataset):
    """Images of ``root/<split>/<class>/`` as ``(uint8 [3, H, W] or transform(image), class index)``.

    Grey, palette, RGBA, CMYK and 16-bit images all come out as 8-bit RGB. ``__getitem__`` returns
    ``None`` for a file that cannot be decoded (use :func:`collate_skipping`, as
    :func:`make_folder_loader` does). ``split=None`` reads ``root/<class>/`` directly.
    """

    def __init__(self, root: str | os.PathLike[str], split: str | None = "train",
                 transform: Callable[[Tensor], Any] | None = None, strict: bool = False) -> None:
        self.root = Path(root)
        self.folder = split_folder(self.root, split) if split is not None else self.root
        scan = scan_folder(self.folder)
        self.classes: list[str] = scan.classes
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = scan.samples
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.strict = strict
        self.skipped: list[tuple[str, str]] = []
        for path, reason in scan.skipped:
            self.record_skipped(path, reason)

    def __len__(self) -> int:
        return len(self.samples)

    def record_skipped(self, path: str, reason: str) -> None:
        """Count one unusable file (once) and warn, or raise when strict."""
        if not self.strict:
            if any(p == path for p, _ in self.skipped):
                return
            self.skipped.append((path, reason))
        report_skipped(path, reason, strict=self.strict)

    def load(self, index: int) -> tuple[Any, int] | SkippedSample:
        path, label = self.samples[index]
        try:
            image = decode_image_tensor(path, channels=3)
        except DecodeFailure as err:
            if self.strict or get_worker_info() is None:
                self.record_skipped(str(path), str(err))
            # In a worker the count would be lost; the FolderLoader records it from the batch instead.
            return SkippedSample(str(path), str(err))
        return (self.transform(image) if self.transform is not None else image), label

    def __getitem__(self, index: int) -> tuple[Any, int] | None:
        sample = self.load(index)
        return None if isinstance(sample, SkippedSample) else sample

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, int] | SkippedSample]:
        # DataLoader fetches whole batches through this, so the collate function learns which
        # files were skipped and can carry them back from the worker to the main process.
        return [self.load(i) for i in indices]


def collate_skipping(batch: Sequence[Any]) -> tuple[Tensor, Tensor, list[tuple[str, str]]]:
    """``default_collate`` of the usable samples, plus ``(path, reason)`` of those skipped."""
    good = [s for s in batch if s is not None and not isinstance(s, SkippedSample)]
    skipped = [(s.path, s.reason) for s in batch if isinstance(s, SkippedSample)]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.int64), skipped
    images, labels = default_collate(good)
    return images, labels, skipped


class FolderLoader(DataLoader):
    """A DataLoader of ``(images, labels)`` that drops skipped files and reports them on ``dataset.skipped``.

    :meth:`set_epoch` reshuffles deterministically per ``(seed, epoch)`` (and reseeds the workers'
    random augmentation), for the single-process and the distributed case alike.
    """

    def __init__(self, dataset: ImageFolderDataset, *, seed: int = 0, **kwargs: Any) -> None:
        self.seed = seed
        self.epoch = 0
        self._worker_seed = torch.Generator()
        super().__init__(dataset, generator=self._worker_seed, collate_fn=collate_skipping, **kwargs)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._worker_seed.manual_seed(mix_seed(self.seed, self.epoch, 1))
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(self.epoch)
        elif isinstance(self.sampler, RandomSampler) and self.sampler.generator is not None:
            self.sampler.generator.manual_seed(mix_seed(self.seed, self.epoch))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:  # type: ignore[override]
        dataset: ImageFolderDataset = self.dataset  # type: ignore[assignment]
        for images, labels, skipped in super().__iter__():
            for path, reason in skipped:
                dataset.record_skipped(path, reason)  # found in a worker: count it here
            if len(labels):
                yield images, labels


def make_folder_loader(
    root: str | os.PathLike[str],
    split: str,
    batch_size: int,
    *,
    train: bool,
    workers: int = 2,
    distributed: bool = False,
    seed: int = 0,
    strict: bool = False,
    image_size: int = IMAGENET_DATA_CONFIG.crop,
) -> FolderLoader:
    """A loader over ``root/<split>`` with the paper's ImageNet training or evaluation preprocessing.

    ``image_size`` is the crop; the resize ranges scale with it (256..480 and 256 at 224). Training
    shuffles and drops the last partial batch; ``distributed`` shards with a DistributedSampler
    (call ``loader.set_epoch(e)`` every epoch either way).
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if workers < 0:
        raise UsageError(f"workers must be >= 0, got {workers}")
    if image_size < 8:
        raise UsageError(f"image size must be at least 8 pixels, got {image_size}")
    scale, resize = imagenet_sizes(image_size)
    if train:
        transform = imagenet_train_transform(scale=scale, crop=image_size)
    else:
        transform = imagenet_eval_transform(resize=resize, crop=image_size)
    dataset = ImageFolderDataset(root, split, transform=transform, strict=strict)
    sampler: torch.utils.data.Sampler[int]
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=train, seed=seed, drop_last=train)
    elif train:
        sampler = RandomSampler(dataset, generator=torch.Generator())
    else:
        sampler = SequentialSampler(dataset)
    return FolderLoader(
        dataset,
        seed=seed,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=train,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,  # fresh workers per epoch get seeds that depend on the epoch
    )
