"""Every named data set: what it is (decoded arrays or a folder read per image), its default
normalisation, and the one way a name plus a data folder becomes images.

Train, evaluate, the experiments and the gradient study all open data through this module, so the
checks (a known name, a data folder that exists) are written once; :func:`resnet.data.load.open_arrays` opens
an array data set by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import DataError, UsageError
from ..reference import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from .arrays import ArrayDataset

Kind = Literal["arrays", "folder"]
Stats = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class DataSet:
    """One named data set. ``arrays``: small images decoded once into one uint8 tensor (cached);
    ``folder``: an ImageNet-layout folder whose images are decoded per batch. ``stats`` is the
    published (mean, std), ``None`` where they are measured on the training split."""

    name: str
    kind: Kind
    stats: Stats | None

    def __post_init__(self) -> None:
        if self.kind == "folder" and self.stats is None:  # never decoded whole, so nothing to measure them on
            raise ValueError(f"folder data set {self.name} needs its published mean and std")

    def published_stats(self) -> Stats:
        """(mean, std) as published; a :class:`DataError` for a data set whose statistics are measured."""
        if self.stats is None:
            raise DataError(f"{self.name} has no published mean and std; they are measured on its training split")
        return self.stats


IMAGE_FOLDER = "folder"  # the user's own folder: small images of one size as arrays, or photos of any size (fine-tuning)
REGISTRY: dict[str, DataSet] = {
    d.name: d
    for d in (
        DataSet("cifar10", "arrays", (CIFAR10_MEAN, CIFAR10_STD)),
        DataSet("cifar100", "arrays", (CIFAR100_MEAN, CIFAR100_STD)),
        DataSet("digits", "arrays", None),
        DataSet(IMAGE_FOLDER, "arrays", None),
        DataSet("imagenet", "folder", (IMAGENET_MEAN, IMAGENET_STD)),
    )
}
ARRAY_DATASETS: tuple[str, ...] = tuple(n for n, d in REGISTRY.items() if d.kind == "arrays")
FOLDER_DATASETS: tuple[str, ...] = tuple(n for n, d in REGISTRY.items() if d.kind == "folder")
ALL_DATASETS: tuple[str, ...] = tuple(REGISTRY)


def data_set(name: str) -> DataSet:
    """The entry of ``name``; :class:`UsageError` listing the names otherwise."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise UsageError(f"unknown data set {name!r}; choose one of {', '.join(ALL_DATASETS)}")
    return entry


def dataset_stats(name: str | None) -> Stats | None:
    """The published (mean, std) of a named data set; ``None`` for unknown names and measured ones."""
    entry = REGISTRY.get(name or "")
    return entry.stats if entry is not None else None


def existing_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """``data_dir`` expanded, or :class:`DataError` when it does not exist (the one check every reader makes)."""
    if data_dir is None:
        return None
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(f"data folder {data_dir} does not exist; check `data_dir`")
    return path


def sample_folder(root: str | os.PathLike[str], split: str, count: int, *, seed: int = 0,
                  channels: int = 3) -> "ArrayDataset":
    """``count`` images drawn at random (seeded) from an image folder ``ROOT/<split>/<class>/*``, decoded and
    normalised with their own per-channel mean and std (a study that needs a small sample of a large set)."""
    import torch

    from .arrays import ArrayDataset
    from .decode import read_image
    from .scan import scan_folder, split_folder

    scan = scan_folder(split_folder(root, split, fallback=False, classes_at_root=True))
    samples = scan.samples
    pick = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))[: min(count, len(samples))]
    images = torch.stack([read_image(samples[i][0], channels) for i in pick.tolist()])
    labels = torch.tensor([samples[i][1] for i in pick.tolist()], dtype=torch.int64)
    scaled = images.to(torch.float64) / 255.0
    mean = tuple(float(v) for v in scaled.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in scaled.std(dim=(0, 2, 3)).clamp_min(1e-6))
    where = f"{len(images)} images drawn at random (seed {seed}) from {root} ({split})"
    return ArrayDataset(images, labels, scan.classes, mean, std, name="folder", source=where)


__all__ = ["ALL_DATASETS", "ARRAY_DATASETS", "DataSet", "FOLDER_DATASETS", "IMAGE_FOLDER", "REGISTRY", "data_set", "dataset_stats",
           "existing_dir", "sample_folder"]
