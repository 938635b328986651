"""Test-time protocols of the paper: single center crop, mirror, 10-crop and fully-convolutional multi-scale.

Every protocol turns a batch of uint8 images into class probabilities ``[N, K]``:

- ``center``: shorter side resized to ``resize`` and a ``crop`` x ``crop`` center crop (ImageNet
  256 → 224); CIFAR-sized data goes in as it is.
- ``flip``: the center view and its mirror image.
- ``shift``: the center view and its mirror, each also translated by ``shift`` pixels diagonally both
  ways with zero fill (6 views): the test-time augmentation of fast CIFAR training, matching the
  zero-padded random crops those nets train on.
- ``10crop``: the four corner crops and the center crop of the resized image, and their mirrors
  (as in Krizhevsky et al. and the paper's Table 3/4).
- ``multiscale``: the paper's fully-convolutional testing (Sec. 3.4): the image resized so that its
  shorter side is each of ``scales`` (no crop), the classifier applied as a 1x1 convolution over the
  last feature map, class scores averaged over all positions, for the image and its mirror.

How outputs are averaged: within one view, class *scores* (logits) are averaged over positions,
which for a linear classifier equals global average pooling followed by the classifier; across
views (crops, mirrors, scales), softmax *probabilities* are averaged, as are an ensemble's members'.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.preprocess import Preprocess, center_box, crop, five_crop_boxes, network_input, resize_shorter
from ..errors import UsageError
from ..utils.modes import PROTOCOLS
from .views import shift_views

ImageBatch = Tensor | Sequence[Tensor]  # uint8 [N, C, H, W], or a list of [C, H, W] of any sizes
IMAGENET_SCALES = (224, 256, 384, 480, 640)
# Scales for small (CIFAR-sized) networks, relative to the crop: CIFAR nets are trained at one scale, so they
# tolerate only a small range (measured: docs/results/eval/README.md).
SMALL_SCALE_FACTORS = (1.0, 1.25)


def fully_convolutional_logits(model: nn.Module, x: Tensor) -> Tensor:
    """Class score map ``[N, K, h, w]``: the last feature map with the fc layer applied as a 1x1 convolution."""
    features = model.forward_features(x)  # type: ignore[operator]
    fc = model.fc  # type: ignore[union-attr]
    if not isinstance(fc, nn.Linear):
        raise UsageError("multiscale testing needs a network with a linear classifier (model.fc)")
    weight = fc.weight.to(features.dtype)
    bias = None if fc.bias is None else fc.bias.to(features.dtype)
    return F.conv2d(features, weight[:, :, None, None], bias)


@dataclass
class Scorer:
    """How a protocol runs one network: ``logits`` on a normalised batch, and its dense score map."""

    logits: Callable[[Tensor], Tensor]
    dense_logits: Callable[[Tensor], Tensor] | None = None

    @classmethod
    def of(cls, model: nn.Module, forward: Callable[[Tensor], Tensor] | None = None) -> "Scorer":
        dense = (lambda x: fully_convolutional_logits(model, x)) if hasattr(model, "forward_features") else None
        return cls(forward or model, dense)


@dataclass
class EvalProtocol:
    """Base class: ``views`` lists the crops of a batch; ``probabilities`` averages their softmax."""

    name: str = field(init=False, default="")

    def describe(self, pre: Preprocess) -> str:
        return self.name

    def views(self, images: ImageBatch, pre: Preprocess) -> list[Tensor]:
        raise NotImplementedError

    @torch.inference_mode()
    def probabilities(self, net: Scorer, images: ImageBatch, pre: Preprocess) -> Tensor:
        return view_probabilities(lambda view: net.logits(network_input(view, pre)), self.views(images, pre))


def view_probabilities(logits: Callable[[Tensor], Tensor], views: Sequence[Tensor]) -> Tensor:
    """The softmax of ``logits`` averaged over ``views``: how every protocol but multiscale, and the trainer's
    flip / shift evaluation (:func:`resnet.train.tasks.evaluate`), turn test views into one score."""
    total: Tensor | None = None
    for view in views:
        p = torch.softmax(logits(view).float(), dim=1)
        total = p if total is None else total + p
    if total is None:
        raise UsageError("no test views to score")
    return total / len(views)


def stack_or_list(images: Sequence[Tensor]) -> ImageBatch:
    """Same-sized images travel as one tensor, so protocols transform them in one call."""
    if len({tuple(img.shape) for img in images}) == 1:
        return torch.stack(list(images))
    return list(images)


def _map_each(images: ImageBatch, fn: Callable[[Tensor], Tensor]) -> Tensor:
    # A uniform batch is transformed in one call; images of different sizes one by one.
    if isinstance(images, Tensor):
        return fn(images)
    return torch.stack([fn(img) for img in images])


def center_view(images: ImageBatch, pre: Preprocess) -> Tensor:
    def one(img: Tensor) -> Tensor:
        img = resize_shorter(img, pre.resize_size, pre.interpolation)
        return crop(img, center_box(*img.shape[-2:], pre.crop_size))

    return _map_each(images, one)


@dataclass
class Center(EvalProtocol):
    name: str = field(init=False, default="center")

    def describe(self, pre: Preprocess) -> str:
        return f"center (resize {pre.resize_size}, crop {pre.crop_size})"

    def views(self, images: ImageBatch, pre: Preprocess) -> list[Tensor]:
        return [center_view(images, pre)]


@dataclass
class Flip(EvalProtocol):
    name: str = field(init=False, default="flip")

    def describe(self, pre: Preprocess) -> str:
        return f"flip (center {pre.crop_size} of {pre.resize_size} and its mirror)"

    def views(self, images: ImageBatch, pre: Preprocess) -> list[Tensor]:
        v = center_view(images, pre)
        return [v, v.flip(-1)]


@dataclass
class Shift(EvalProtocol):
    """Center view and mirror, each also shifted diagonally by ``shift`` px both ways (default: crop / 16)."""

    shift: int | None = None
    name: str = field(init=False, default="shift")

    def pixels(self, pre: Preprocess) -> int:
        return self.shift if self.shift is not None else max(1, pre.crop_size // 16)

    def describe(self, pre: Preprocess) -> str:
        return f"shift (center {pre.crop_size} and mirror, each also moved ±{self.pixels(pre)} px diagonally; 6 views)"

    def views(self, images: ImageBatch, pre: Preprocess) -> list[Tensor]:
        return shift_views(center_view(images, pre), self.pixels(pre))


def ten_crop_hint(pre: Preprocess) -> str:
    """Sizes that make 10crop help: the resize kept, crops of 7/8 of it (upscaling instead hurts: measured in
    docs/results/eval/README.md)."""
    return f"`resize` {pre.resize_size} `crop` {max(1, pre.resize_size * 7 // 8)}"


@dataclass
class TenCrop(EvalProtocol):
    name: str = field(init=False, default="10crop")

    def describe(self, pre: Preprocess) -> str:
        return f"10crop ({pre.crop_size} px corners + center of {pre.resize_size}, and mirrors)"

    def views(self, images: ImageBatch, pre: Preprocess) -> list[Tensor]:
        if pre.resize_size <= pre.crop_size:
            raise UsageError(
                f"10crop needs crops smaller than the resized image (resize {pre.resize_size}, crop {pre.crop_size}); "
                f"keep the image at its size and crop 7/8 of it, as the paper does (224 of 256): {ten_crop_hint(pre)}"
            )
        per_box: list[list[Tensor]] = [[] for _ in range(5)]
        uniform = isinstance(images, Tensor)
        for img in [images] if uniform else images:  # type: ignore[list-item]
            img = resize_shorter(img, pre.resize_size, pre.interpolation)
            for i, box in enumerate(five_crop_boxes(*img.shape[-2:], pre.crop_size)):
                per_box[i].append(crop(img, box))
        crops = [c[0] if uniform else torch.stack(c) for c in per_box]
        return crops + [c.flip(-1) for c in crops]


@dataclass
class MultiScale(EvalProtocol):
    """Fully-convolutional testing over ``scales`` (shorter side in pixels), with mirrors when ``flip``."""

    scales: tuple[int, ...] | None = None
    flip: bool = True
    name: str = field(init=False, default="multiscale")

    def scales_for(self, pre: Preprocess) -> tuple[int, ...]:
        if self.scales:
            return tuple(self.scales)
        if pre.crop_size >= 128:
            return IMAGENET_SCALES
        return tuple(int(round(pre.crop_size * f)) for f in SMALL_SCALE_FACTORS)

    def describe(self, pre: Preprocess) -> str:
        return f"multiscale (fully convolutional, shorter side {list(self.scales_for(pre))}{', and mirrors' if self.flip else ''})"

    def views(self, images: ImageBatch, pre: Preprocess) -> list[Tensor]:
        raise UsageError("multiscale views differ in size per image; use probabilities()")

    @torch.inference_mode()
    def probabilities(self, net: Scorer, images: ImageBatch, pre: Preprocess) -> Tensor:
        if net.dense_logits is None:
            raise UsageError("multiscale testing needs the network's feature map (forward_features); it is not available here")
        scales = self.scales_for(pre)
        if any(s < 1 for s in scales):
            raise UsageError(f"`scales` must be positive pixel sizes, got {list(scales)}")
        n = len(images)
        total: Tensor | None = None
        for s in scales:
            resized = [resize_shorter(images, s)] if isinstance(images, Tensor) else [resize_shorter(img, s) for img in images]
            # Images of one shape share a forward pass; results go back to their places.
            groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
            if isinstance(images, Tensor):
                groups[tuple(resized[0].shape)] = list(range(n))
                batches = {tuple(resized[0].shape): resized[0]}
            else:
                for i, img in enumerate(resized):
                    groups[tuple(img.shape)].append(i)
                batches = {shape: torch.stack([resized[i] for i in idx]) for shape, idx in groups.items()}
            for shape, idx in groups.items():
                x = network_input(batches[shape], pre)
                for mirrored in (False, True) if self.flip else (False,):
                    scores = net.dense_logits(x.flip(-1) if mirrored else x).float().mean(dim=(2, 3))
                    p = torch.softmax(scores, dim=1)
                    if total is None:
                        total = torch.zeros(n, p.shape[1])
                    total[idx] += p
        assert total is not None
        return total / (len(scales) * (2 if self.flip else 1))


def get_protocol(name: str, scales: Sequence[int] | None = None, shift: int | None = None) -> EvalProtocol:
    """``center`` / ``flip`` / ``shift`` / ``10crop`` / ``multiscale`` (``scales`` only for multiscale,
    ``shift`` only for shift)."""
    if name == "center":
        return Center()
    if name == "flip":
        return Flip()
    if name == "shift":
        if shift is not None and shift < 1:
            raise UsageError(f"`shift` must be at least 1 pixel, got {shift}")
        return Shift(shift)
    if name == "10crop":
        return TenCrop()
    if name == "multiscale":
        return MultiScale(tuple(scales) if scales else None)
    raise UsageError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
