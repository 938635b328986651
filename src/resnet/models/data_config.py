"""The data config each stem was designed for, as timm's ``_cfg()``: input size, resize, crop, whose statistics.

Every fallback reads it — a network without recorded preprocessing (:func:`resnet.data.defaults.default_preprocess`),
the example batch of an export or benchmark, the side the multiply-adds are counted at, the crop a photo-folder
recipe trains at — so the sizes are written here once. Weights published with other sizes (torchvision's V2 files
resize to 232, most timm weights are bicubic) carry their own :class:`~resnet.data.preprocess.Preprocess` in
:mod:`resnet.weights.registry`; this is what applies when nothing more specific is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataConfig:
    """The input convention of a stem: ``resize`` / ``crop`` ``None`` mean images go in as they are."""

    input_size: int
    resize: int | None = None  # shorter side before the centre crop
    crop: int | None = None
    stats: str = "imagenet"  # the data set whose published mean / std apply (a name of resnet.data.REGISTRY)
    interpolation: str = "bilinear"


# The paper's ImageNet test protocol (Sec. 3.4: 224 crops, shorter side 256) and its CIFAR one (32x32 as they are).
STEM_DATA_CONFIGS: dict[str, DataConfig] = {
    "imagenet": DataConfig(224, resize=256, crop=224, stats="imagenet"),
    "cifar": DataConfig(32, stats="cifar10"),
}
IMAGENET_DATA_CONFIG = STEM_DATA_CONFIGS["imagenet"]  # also the default when nothing names a stem


def data_config(spec_or_stem: Any = None) -> DataConfig:
    """The data config of a :class:`~resnet.models.specs.ModelSpec`, a network carrying one (``.spec``) or a stem
    name; the ImageNet one for anything else (``None``, a foreign module)."""
    stem = spec_or_stem if isinstance(spec_or_stem, str) else getattr(getattr(spec_or_stem, "spec", spec_or_stem), "stem", None)
    return STEM_DATA_CONFIGS.get(stem or "imagenet", IMAGENET_DATA_CONFIG)


def default_input_size(spec_or_stem: Any = None) -> int:
    """The input side a network of this spec / stem expects (224 ImageNet stems, 32 CIFAR ones)."""
    return data_config(spec_or_stem).input_size
