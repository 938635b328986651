"""ImageNet preprocessing of the paper (Sec. 3.4), as torchvision ``transforms.v2`` on uint8 tensors.

Training: shorter side resized to a random length in [256, 480], a random 224x224 crop, a horizontal
flip, conversion to float in [0, 1], AlexNet's PCA colour ("lighting") noise, and normalisation.
Evaluation: shorter side 256, centre 224 crop.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from ..models.data_config import IMAGENET_DATA_CONFIG
from ..reference import IMAGENET_MEAN, IMAGENET_STD

PAPER_TRAIN_SCALE = (256, 480)  # the paper's scale augmentation at 224 crops: shorter side uniform in [256, 480]

# Eigen-decomposition of the RGB covariance of ImageNet pixels in [0, 1] (Krizhevsky et al. 2012;
# the values fb.resnet.torch uses). Columns of IMAGENET_EIGVEC are the eigenvectors.
IMAGENET_EIGVAL: tuple[float, float, float] = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC: tuple[tuple[float, float, float], ...] = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class Lighting(nn.Module):
    """AlexNet PCA lighting noise: adds ``eigvec @ (alpha * eigval)`` to every pixel, ``alpha ~ N(0, alphastd²)``
    drawn per image. Expects float RGB in [0, 1], ``[3, H, W]`` or ``[B, 3, H, W]``."""

    def __init__(self, alphastd: float = 0.1, eigval: Sequence[float] = IMAGENET_EIGVAL,
                 eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if alphastd < 0:
            raise ValueError(f"alphastd must be >= 0, got {alphastd}")
        self.alphastd = float(alphastd)
        self.register_buffer("eigval", torch.tensor(eigval, dtype=torch.float32), persistent=False)
        self.register_buffer("eigvec", torch.tensor(eigvec, dtype=torch.float32), persistent=False)
        self.generator = generator

    def forward(self, img: Tensor) -> Tensor:
        if self.alphastd == 0:
            return img
        if not img.is_floating_point() or img.shape[-3] != 3:
            raise ValueError(f"Lighting expects float RGB [..., 3, H, W] images, got {img.dtype} {tuple(img.shape)}")
        batch = img.shape[:-3]
        alpha = torch.randn((*batch, 3), generator=self.generator) * self.alphastd
        rgb = (alpha * self.eigval) @ self.eigvec.T  # [..., 3]: sum_j eigvec[c, j] * alpha_j * eigval_j
        return img + rgb.to(img.device, img.dtype)[..., :, None, None]

    def extra_repr(self) -> str:
        return f"alphastd={self.alphastd}"


def imagenet_sizes(crop: int) -> tuple[tuple[int, int], int]:
    """(training scale range, evaluation resize) of the paper's preprocessing for a ``crop``-pixel input:
    256..480 and 256 at 224, scaled with the crop."""
    low, high = PAPER_TRAIN_SCALE
    ratio = crop / IMAGENET_DATA_CONFIG.crop
    return (round(low * ratio), round(high * ratio)), round(IMAGENET_DATA_CONFIG.resize * ratio)


def imagenet_train_transform(
    scale: tuple[int, int] = PAPER_TRAIN_SCALE,
    crop: int = IMAGENET_DATA_CONFIG.crop,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    lighting: float = 0.1,
) -> v2.Compose:
    """Scale augmentation (shorter side uniform in ``scale``), random ``crop``, flip, lighting, normalise."""
    low, high = scale
    if not 0 < low <= high or crop < 1:
        raise ValueError(f"need 0 < scale[0] <= scale[1] and crop >= 1, got scale={scale} crop={crop}")
    steps: list[nn.Module] = [
        v2.RandomShortestSize(min_size=list(range(low, high + 1)), antialias=True),
        v2.RandomCrop(crop, pad_if_needed=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if lighting > 0:
        steps.append(Lighting(lighting))
    steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)


def imagenet_eval_transform(
    resize: int = IMAGENET_DATA_CONFIG.resize, crop: int = IMAGENET_DATA_CONFIG.crop, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> v2.Compose:
    """Shorter side to ``resize``, centre ``crop``, normalise (the single-crop test protocol)."""
    return v2.Compose([
        v2.Resize(resize, antialias=True),
        v2.CenterCrop(crop),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ])
