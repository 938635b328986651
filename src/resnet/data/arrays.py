"""An in-memory image data set: uint8 images and int64 labels, plus what is needed to normalise them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class ArrayDataset:
    """Images kept decoded as one uint8 tensor, so batches are sliced and augmented on tensors.

    ``mean``/``std`` are per-channel statistics in [0, 1] units used to normalise this data.
    """

    images: torch.Tensor  # uint8, [N, C, H, W]
    labels: torch.Tensor  # int64, [N]
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = ""
    source: str = ""  # where it came from (path / archive / package), for logs
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be a uint8 [N, C, H, W] tensor, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise ValueError(f"labels must be [N] with N={len(self.images)}, got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, index: torch.Tensor) -> "ArrayDataset":
        return replace(self, images=self.images[index], labels=self.labels[index])
