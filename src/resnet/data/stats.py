"""Per-channel mean and standard deviation of uint8 images, in [0, 1] units."""

from __future__ import annotations

import torch
from torch import Tensor

_CHUNK = 2048


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact statistics over every pixel of a uint8 ``[N, C, H, W]`` tensor.

    Sums run in int64 chunk by chunk, so 50k CIFAR images need neither a float copy of the whole set
    nor float accumulation error.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) == 0:
        shape = tuple(images.shape)
        raise ValueError(f"channel_stats needs a non-empty uint8 [N, C, H, W] tensor, got {images.dtype} {shape}")
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.int64)
    squares = torch.zeros(channels, dtype=torch.int64)
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].to("cpu", torch.int64)
        total += chunk.sum(dim=(0, 2, 3))
        squares += (chunk * chunk).sum(dim=(0, 2, 3))
    count = images.numel() // channels
    mean = total.double() / count
    var = (squares.double() / count - mean * mean).clamp_min(0.0)
    return tuple((mean / 255.0).tolist()), tuple((var.sqrt() / 255.0).tolist())
