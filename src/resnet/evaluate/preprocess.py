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
    network_input,
    resize_shorter,
)

__all__ = ["INTERPOLATIONS", "MAX_SIDE", "Preprocess", "network_input", "resize_shorter", "center_box", "five_crop_boxes",
           "crop", "match_channels", "Box"]
