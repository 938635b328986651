"""The input conventions evaluation uses; they live in :mod:`resnet.data.preprocess` (training uses them too)."""

from __future__ import annotations

from ..data.preprocess import (
    INTERPOLATIONS,
    MAX_SIDE,
    Box,
    Preprocess,
    center_box,
    crop,
    five_crop_boxes,
    match_channels,
    normalize,
    resize_shorter,
)

__all__ = ["INTERPOLATIONS", "MAX_SIDE", "Preprocess", "normalize", "resize_shorter", "center_box", "five_crop_boxes",
           "crop", "match_channels", "Box"]
