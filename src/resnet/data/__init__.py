"""Data sets, caches and batched augmentation.

Small data sets (CIFAR-10/100, digits, folders of small images) are decoded once into uint8 tensors
(:func:`load_arrays`, cached on disk) and batched on the device by :class:`TensorLoader`. ImageNet-size
folders are decoded per image in DataLoader workers (:func:`make_folder_loader`). Every named data set
is an entry of :data:`REGISTRY` (:mod:`resnet.data.registry`); :func:`open_arrays` opens an array one by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .arrays import ArrayDataset
from .augment import CropFlip, apply_crop_flip, cifar_augment, downscale, draw_crop_flip, fused_normalize
from .cache import default_cache_dir
from .cifar import CIFAR_SPECS
from .load import DATASETS, load_arrays, open_arrays
from .loader import TensorLoader
from .registry import ALL_DATASETS, REGISTRY, data_set
from .scan import IMAGE_EXTENSIONS, DataWarning
from .split import holdout_split
from .stats import channel_stats
from ..utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from .folder import FolderLoader, ImageFolderDataset, SkippedSample, collate_skipping, make_folder_loader
    from .transforms import (
        IMAGENET_EIGVAL,
        IMAGENET_EIGVEC,
        IMAGENET_MEAN,
        IMAGENET_STD,
        Lighting,
        imagenet_eval_transform,
        imagenet_train_transform,
    )

# torchvision.transforms takes over a second to import; CIFAR training never needs it.
_LAZY = {
    **dict.fromkeys(
        ["FolderLoader", "ImageFolderDataset", "SkippedSample", "collate_skipping", "make_folder_loader"], "folder"
    ),
    **dict.fromkeys(["IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "IMAGENET_MEAN", "IMAGENET_STD", "Lighting",
                     "imagenet_eval_transform", "imagenet_train_transform"], "transforms"),
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "ArrayDataset", "load_arrays", "holdout_split", "TensorLoader", "cifar_augment", "fused_normalize",
    "ImageFolderDataset", "imagenet_train_transform", "imagenet_eval_transform", "Lighting", "make_folder_loader",
    "DATASETS", "CIFAR_SPECS", "CropFlip", "DataWarning", "FolderLoader", "IMAGE_EXTENSIONS", "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC", "IMAGENET_MEAN", "IMAGENET_STD", "SkippedSample", "apply_crop_flip", "channel_stats",
    "collate_skipping", "default_cache_dir", "downscale", "draw_crop_flip", "ALL_DATASETS", "REGISTRY", "data_set", "open_arrays",
]
