"""What a network expects of its input (normalisation, resize, crop) and the geometry of test crops.

Images travel as uint8 ``[C, H, W]`` tensors (or ``[N, C, H, W]`` batches of one size) until the
last step, so resizing and cropping are exact integer operations and the same pixels reach every
protocol. Crop boxes follow torchvision's conventions (``center_crop`` rounds the offset), so a
torchvision checkpoint evaluated here sees what its reference pipeline feeds it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.preprocess import INTERPOLATIONS, MAX_SIDE, Preprocess
from ..errors import DataError

__all__ = ["INTERPOLATIONS", "MAX_SIDE", "Preprocess", "normalize", "resize_shorter", "center_box", "five_crop_boxes",
           "crop", "match_channels", "Box"]

Box = tuple[int, int, int, int]  # top, left, height, width


def normalize(batch: Tensor, pre: Preprocess) -> Tensor:
    """uint8 ``[N, C, H, W]`` → float32 normalised with ``pre.mean`` / ``pre.std``."""
    if batch.shape[1] != pre.channels:
        raise ValueError(f"images have {batch.shape[1]} channels, the network expects {pre.channels}")
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
    # The same operations in the same order as ToTensor + Normalize, so scores match reference pipelines bit for bit.
    return batch.to(torch.float32).div_(255.0).sub_(mean).div_(std)


def resize_shorter(img: Tensor, size: int, interpolation: str = "bilinear") -> Tensor:
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


def crop(img: Tensor, box: Box) -> Tensor:
    top, left, height, width = box
    return img[..., top : top + height, left : left + width]


def match_channels(img: Tensor, channels: int, origin: str = "image") -> Tensor:
    """Grey images are repeated to three channels; colour images cannot feed a one-channel network."""
    c = img.shape[-3]
    if c == channels:
        return img
    if c == 1:
        return img.expand(*img.shape[:-3], channels, *img.shape[-2:])
    raise DataError(f"{origin} has {c} channels but the network takes {channels}; use data with {channels}-channel images")

