"""Shared helpers for the deploy tests: networks with non-trivial BN statistics and a few real CIFAR images."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN running statistics and affine parameters far from the identity, as after training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    return model.eval()


def cifar_images(cifar10_dir: Path, per_class: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` test images of each class, ImageNet-normalised as the akamaster weights expect, and labels."""
    import numpy as np
    from PIL import Image

    root = cifar10_dir / "test"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir())[offset : offset + per_class]:
            with Image.open(path) as img:
                images.append(torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1))
            labels.append(label)
    x = torch.stack(images).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std, torch.tensor(labels)


def structure(model: "torch.nn.Module") -> set[str]:
    """What a network holds that a deploy path must handle: ``bottleneck``, ``projection`` (a 1x1 convolution on a
    shortcut), ``zero-pad`` (option A), ``max-pool``; so a test says, and checks, what it covers."""
    from resnet.models.blocks import Bottleneck, ZeroPadShortcut

    found = set()
    for module in model.modules():
        if isinstance(module, Bottleneck):
            found.add("bottleneck")
        if isinstance(module, torch.nn.MaxPool2d):
            found.add("max-pool")
        if isinstance(module, ZeroPadShortcut):
            found.add("zero-pad")
        downsample = getattr(module, "downsample", None)
        if downsample is not None and any(isinstance(m, torch.nn.Conv2d) for m in downsample.modules()):
            found.add("projection")
    return found
