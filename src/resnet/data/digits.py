"""scikit-learn's 8x8 handwritten digits as a small CIFAR-shaped data set that needs no download.

1,797 grey images (values 0..16) scaled to 0..255 and upsampled to 32x32, one channel, with a fixed
stratified 80/20 train/test split, so every command can run offline in seconds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .arrays import ArrayDataset
from .stats import channel_stats

DIGITS_SIZE = 32
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _all_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) * (255.0 / 16.0)).unsqueeze(1)
    # Bilinear upsampling keeps strokes smooth; nearest would give 4x4 pixel blocks.
    big = F.interpolate(grey, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    images = big.round().clamp(0, 255).to(torch.uint8).contiguous()
    return images, torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))


def digits_split_indices(labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices (each sorted) of the fixed stratified split."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels.numpy())
    return np.sort(train), np.sort(test)


def load_digits_arrays(split: str) -> ArrayDataset:
    images, labels = _all_digits()
    train, test = digits_split_indices(labels)
    mean, std = channel_stats(images[torch.from_numpy(train)])
    chosen = torch.from_numpy(train if split == "train" else test)
    return ArrayDataset(
        images=images[chosen].contiguous(),
        labels=labels[chosen].contiguous(),
        classes=[str(d) for d in range(10)],
        mean=mean,
        std=std,
        name="digits",
        source="sklearn.datasets.load_digits",
    )
