"""Batched augmentation and normalisation on tensors: one call per batch, never a Python loop per image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class CropFlip:
    """Per-image random choices of :func:`cifar_augment`: crop corner in the padded image, and mirroring."""

    top: Tensor  # int64 [B], 0..2*padding
    left: Tensor  # int64 [B]
    flip: Tensor  # bool [B]


def draw_crop_flip(batch: int, padding: int, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> CropFlip:
    """Draws, in a fixed order (top, left, flip), from ``generator`` (on ``device``)."""
    top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=device)
    flip = torch.rand(batch, generator=generator, device=device) < 0.5
    return CropFlip(top, left, flip)


def apply_crop_flip(x: Tensor, params: CropFlip, padding: int) -> Tensor:
    """Zero-pad by ``padding``, cut each image's window at its own offset, mirror where asked."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = params.top[:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = params.left[:, None] + torch.arange(w, device=x.device)  # [B, W]
    cols = torch.where(params.flip[:, None], cols.flip(1), cols)
    # Flattened gather: one index per output pixel into each padded image, shared by its channels.
    pw = w + 2 * padding
    index = (rows[:, :, None] * pw + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, -1).gather(2, index).view(b, c, h, w)


def cifar_augment(x: Tensor, generator: torch.Generator | None = None, padding: int = 4) -> Tensor:
    """The paper's CIFAR augmentation on a batch ``[B, C, H, W]`` (uint8 or float): 4-pixel zero padding,
    a random ``HxW`` crop and a horizontal flip with probability 1/2, independently per image.

    Same dtype and device out. ``generator`` must live on ``x.device``; with a seeded one the result
    is reproducible (the draws are :func:`draw_crop_flip`'s).
    """
    if x.ndim != 4:
        raise ValueError(f"cifar_augment expects a [B, C, H, W] batch, got shape {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    params = draw_crop_flip(x.shape[0], padding, generator, x.device)
    return apply_crop_flip(x, params, padding)


def fused_normalize(
    x_uint8: Tensor, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32
) -> Tensor:
    """``(x / 255 - mean) / std`` per channel, for ``[B, C, H, W]`` or ``[C, H, W]`` uint8 images, as one fused
    multiply-add (``x * a + b``) in float32, cast to ``dtype`` only then, so bf16/fp16 output is rounded once.

    The training batches' normalisation: one pass instead of three, within float32 rounding of
    :func:`~resnet.data.preprocess.network_input` (which matches torchvision bit for bit, for evaluation).
    """
    channels = x_uint8.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels}-channel images")
    shape = (channels, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x_uint8.device)
    std_t = torch.tensor(std, dtype=torch.float32, device=x_uint8.device)
    scale = 1.0 / (255.0 * std_t)
    shift = -mean_t / std_t
    out = torch.addcmul(shift.view(shape), x_uint8.to(torch.float32), scale.view(shape))
    return out if dtype == torch.float32 else out.to(dtype)


def downscale(x: Tensor, side: int) -> Tensor:
    """A normalised batch ``[B, C, H, W]`` shrunk to ``side x side`` pixels (bilinear with antialiasing, computed
    in float32), in its dtype and memory format; the batch itself where it already has that size."""
    if x.ndim != 4:
        raise ValueError(f"downscale expects a [B, C, H, W] batch, got shape {tuple(x.shape)}")
    if x.shape[-2:] == (side, side):
        return x
    if not 0 < side <= min(x.shape[-2:]):
        raise ValueError(f"downscale shrinks images: side must be in [1, {min(x.shape[-2:])}], got {side}")
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1 \
        else torch.contiguous_format
    out = F.interpolate(x.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return out.to(x.dtype).contiguous(memory_format=fmt)
