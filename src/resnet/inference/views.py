"""Test-time views of a batch: the mirror and diagonal shifts (one owner for the trainer and ``resnet eval``).

The trainer shifts normalised tensors (filling with a normalised black pixel); the ``shift`` protocol of
:mod:`resnet.inference.protocols` shifts uint8 crops (filling with 0) and normalises afterwards: both
build their views here, in the same order, so they score the same images, and both average them with
:func:`resnet.inference.protocols.view_probabilities`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UsageError


def translate(x: Tensor, dy: int, dx: int, fill: float | Tensor = 0) -> Tensor:
    """``x`` [..., H, W] moved down ``dy`` and right ``dx`` pixels (negative: up / left), the uncovered
    border set to ``fill`` (a scalar, or a per-channel tensor broadcast as [C, 1, 1])."""
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise UsageError(f"a shift of ({dy}, {dx}) pixels leaves nothing of a {h}x{w} image; use a smaller `shift`")
    out = torch.empty_like(x)
    out[...] = fill if isinstance(fill, Tensor) else torch.as_tensor(fill, dtype=x.dtype)
    src_rows = slice(max(0, -dy), h - max(0, dy))
    dst_rows = slice(max(0, dy), h - max(0, -dy))
    src_cols = slice(max(0, -dx), w - max(0, dx))
    dst_cols = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_rows, dst_cols] = x[..., src_rows, src_cols]
    return out


def eval_views(x: Tensor, *, flip: bool, shift: int, fill: float | Tensor = 0) -> list[Tensor]:
    """``x`` (and its mirror when ``flip``), each also moved by ``(+shift, +shift)`` and ``(-shift, -shift)``
    when ``shift`` > 0: 1, 2, 3 or 6 views, in that order."""
    views = [x, x.flip(-1)] if flip else [x]
    if not shift:
        return views
    return [w for v in views for w in (v, translate(v, shift, shift, fill), translate(v, -shift, -shift, fill))]


def shift_views(x: Tensor, shift: int, fill: float | Tensor = 0) -> list[Tensor]:
    """``x``, its mirror, and each moved by ``(+shift, +shift)`` and ``(-shift, -shift)``: 6 views."""
    return eval_views(x, flip=True, shift=shift, fill=fill)
