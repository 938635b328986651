"""What a network expects of its input (normalisation, resize, crop, interpolation) and the operations on it.

One typed value travels with a network from its weights (named pretrained weights, a run folder's
metadata: :meth:`Preprocess.as_dict` writes it, :meth:`Preprocess.from_dict` is the one reader, which
also takes the partial dicts older checkpoints carry) to every consumer: ``resnet eval`` / ``predict``
/ ``serve`` and the training data pipelines.

Images travel as uint8 ``[C, H, W]`` tensors (or ``[N, C, H, W]`` batches of one size) until the
last step, so resizing and cropping are exact integer operations and the same pixels reach every
protocol. Crop boxes follow torchvision's conventions (``center_crop`` rounds the offset), so a
torchvision checkpoint evaluated here sees what its reference pipeline feeds it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import CheckpointError, DataError
from ..models.data_config import IMAGENET_DATA_CONFIG
from ..utils.limits import MAX_SIDE

if TYPE_CHECKING:
    from torch import Tensor

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
Box = tuple[int, int, int, int]  # top, left, height, width


@dataclass(frozen=True)
class Preprocess:
    """Input convention of one network.

    ``resize`` is the shorter side images are scaled to before cropping and ``crop`` the side of the
    square crop fed to the network; ``None`` for both means "the image as it is" (CIFAR nets),
    and images of another size are then scaled and cropped to ``input_size``.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    resize: int | None = None
    crop: int | None = None
    interpolation: str = "bilinear"  # of the resize: bilinear (torchvision) or bicubic (most timm weights)

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"mean {self.mean} and std {self.std} need one entry per channel")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        for name in ("input_size", "resize", "crop"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 1 <= value <= MAX_SIDE):
                raise ValueError(f"{name} must be an integer from 1 to {MAX_SIDE} pixels, got {value!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.resize is not None and self.resize < self.crop_size:
            raise ValueError(f"the resize to {self.resize} pixels leaves no room for the {self.crop_size}-pixel crop; "
                             "resize must be at least the crop")

    @property
    def crop_size(self) -> int:
        return self.crop or self.input_size

    @property
    def resize_size(self) -> int:
        return self.resize or self.crop_size

    @property
    def channels(self) -> int:
        return len(self.mean)

    def with_sizes(self, resize: int | None = None, crop: int | None = None) -> "Preprocess":
        """A copy with ``resize`` / ``crop`` replaced where given."""
        return Preprocess(
            self.mean, self.std, self.input_size, resize if resize is not None else self.resize,
            crop if crop is not None else self.crop, self.interpolation,
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], origin: str = "checkpoint") -> "Preprocess":
        try:
            return cls(
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                input_size=int(d.get("input_size") or d.get("crop") or IMAGENET_DATA_CONFIG.input_size),
                resize=None if d.get("resize") is None else int(d["resize"]),
                crop=None if d.get("crop") is None else int(d["crop"]),
                interpolation=str(d.get("interpolation") or "bilinear"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{origin}: its preprocessing metadata is invalid ({err}); rewrite it with mean, std and input_size") from None


def network_input(batch: "Tensor", pre: Preprocess) -> "Tensor":
    """uint8 views ``[N, C, H, W]`` → the float32 batch the network takes: normalised with ``pre.mean`` / ``pre.std``
    exactly as torchvision's ToTensor + Normalize (evaluation, prediction, serving; training batches use the faster
    :func:`~resnet.data.augment.fused_normalize`)."""
    import torch

    if batch.shape[1] != pre.channels:
        raise ValueError(f"images have {batch.shape[1]} channels, the network expects {pre.channels}")
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
    # The same operations in the same order as ToTensor + Normalize, so scores match reference pipelines bit for bit.
    return batch.to(torch.float32).div_(255.0).sub_(mean).div_(std)


def resize_shorter(img: "Tensor", size: int, interpolation: str = "bilinear") -> "Tensor":
    """Scale ``[..., H, W]`` so that its shorter side is ``size`` (antialiased); a no-op when it already is."""
    h, w = img.shape[-2:]
    if min(h, w) == size:
        return img
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    return F.resize(img, [size], interpolation=InterpolationMode(interpolation), antialias=True)


def center_box(h: int, w: int, size: int) -> Box:
    if size > h or size > w:
        raise ValueError(f"crop {size} is larger than the image {h}x{w}")
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0)), size, size


def five_crop_boxes(h: int, w: int, size: int) -> list[Box]:
    """Top-left, top-right, bottom-left, bottom-right and center boxes of side ``size``."""
    if size > h or size > w:
        raise ValueError(f"crop {size} is larger than the image {h}x{w}")
    return [(0, 0, size, size), (0, w - size, size, size), (h - size, 0, size, size), (h - size, w - size, size, size), center_box(h, w, size)]


def crop(img: "Tensor", box: Box) -> "Tensor":
    top, left, height, width = box
    return img[..., top : top + height, left : left + width]


def match_channels(img: "Tensor", channels: int, origin: str = "image") -> "Tensor":
    """Grey images are repeated to three channels; colour images cannot feed a one-channel network."""
    c = img.shape[-3]
    if c == channels:
        return img
    if c == 1:
        return img.expand(*img.shape[:-3], channels, *img.shape[-2:])
    raise DataError(f"{origin} has {c} channels but the network takes {channels}; use data with {channels}-channel images")
