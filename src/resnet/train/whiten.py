"""Whitening initialisation of the first convolution (the recipe field ``whiten_stem``).

Each filter of the stem starts as a principal direction of the training images' patches, scaled by
``1 / sqrt(variance + eps)``, in pairs of opposite sign (the ReLU after the stem keeps one half of each),
largest variance first. The network is unchanged and every weight still trains; only the starting point
differs from He initialisation (Page 2019 and Jordan 2024 freeze such a layer in their own networks).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError

EPS = 5e-4  # added to each variance before its square root; airbench's value for normalised CIFAR pixels


def patch_eigen(images: Tensor, kernel: int) -> tuple[Tensor, Tensor]:
    """Variances (descending) and principal directions (rows, ``C*k*k`` long) of ``kernel``-square patches."""
    patches = F.unfold(images.float(), kernel).transpose(1, 2).reshape(-1, images.shape[1] * kernel * kernel)
    patches = patches - patches.mean(0)
    cov = patches.T.double() @ patches.double() / max(1, len(patches) - 1)
    variances, directions = torch.linalg.eigh(cov)
    order = variances.argsort(descending=True)
    return variances[order].float(), directions[:, order].T.float()


def whitening_filters(images: Tensor, out_channels: int, kernel: int, eps: float = EPS) -> Tensor:
    """Up to ``out_channels`` filters of shape ``(C, kernel, kernel)``: the leading whitened directions and their
    negatives. A patch of C*k*k values has that many directions, so a wider stem gets ``2*C*k*k`` filters."""
    variances, directions = patch_eigen(images, kernel)
    pairs = min(-(-out_channels // 2), len(variances))
    scaled = directions[:pairs] / (variances[:pairs, None] + eps).sqrt()
    filters = torch.stack([scaled, -scaled], 1).reshape(2 * pairs, -1)[:out_channels]
    return filters.reshape(len(filters), images.shape[1], kernel, kernel)


def whiten_stem(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], images: int) -> str:
    """Set ``model.conv1`` to whitening filters measured on the first ``images`` images of ``batches``; filters
    beyond the patches' directions (a stem wider than twice ``C*k*k``) keep their initialisation."""
    conv = getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or conv.kernel_size[0] != conv.kernel_size[1]:
        raise UsageError(f"whiten_stem needs a network whose first layer `conv1` is a square convolution; "
                         f"{type(model).__name__} has none (set whiten_stem=0)")
    seen: list[Tensor] = []
    count = 0
    for x, _ in batches:
        seen.append(x.detach().cpu())
        count += len(x)
        if count >= images:
            break
    sample = torch.cat(seen)[:images]
    filters = whitening_filters(sample, conv.out_channels, conv.kernel_size[0])
    with torch.no_grad():
        conv.weight[: len(filters)].copy_(filters.to(conv.weight))
    kept = conv.out_channels - len(filters)
    return (f"stem whitened on {len(sample):,} training images ({len(filters)} filters, eps {EPS:g}"
            f"{f'; {kept} more keep their initialisation' if kept else ''})")
