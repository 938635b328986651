"""Every named network as plain data.

A :class:`ModelSpec` says everything needed to build a network; :mod:`resnet.models.network`
turns it into modules. Names follow torchvision for the ImageNet family and the paper for
CIFAR (``resnet20`` ... ``resnet1202``, any ``6n+2``); ``plainNN`` is the twin without shortcuts.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from .data_config import STEM_DATA_CONFIGS, DataConfig, data_config

SHORTCUT_OPTIONS: tuple[str, ...] = ("A", "B", "C", "none")
# "basic" / "bottleneck": the paper's blocks, strided by their first block; "pool": each stage opens with a
# 3x3 conv-BN-ReLU to its width and a 2x2 max-pool, then ``layers[i]`` residual pairs of conv-BN-ReLU (Page's ResNet-9)
BLOCK_KINDS: tuple[str, ...] = ("basic", "bottleneck", "pool")
HEAD_POOLS: tuple[str, ...] = ("avg", "max")
# the nonlinearity after each batch norm: ReLU (the paper), GELU (airbench94, Jordan 2024) or CELU (Page 2019);
# the last two for "pool" networks only
ACTIVATIONS: tuple[str, ...] = ("relu", "gelu", "celu")

IMAGENET_DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    # depth -> (block, blocks per stage): paper Table 1, plus ResNet-200 (Identity Mappings paper).
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    26: ("bottleneck", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
CIFAR_REGISTERED_DEPTHS = (20, 32, 44, 56, 110, 1202)
VERSIONS = ("v1", "v1.5")
STEMS: tuple[str, ...] = tuple(STEM_DATA_CONFIGS)


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one network. Every field may be overridden in ``create_model``."""

    block: str  # one of BLOCK_KINDS
    layers: tuple[int, ...]  # blocks per stage (residual pairs after the opening conv for "pool")
    widths: tuple[int, ...]  # base ("planes") width of each stage; bottlenecks output 4x this
    stem: str = "imagenet"  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": 3x3/1 conv
    stem_width: int = 64
    shortcut: str = "B"  # paper option A / B / C, or "none" for the plain twin
    preact: bool = False  # pre-activation blocks (BN -> ReLU -> conv)
    version: str = "v1.5"  # bottleneck stride: "v1" in the first 1x1 (paper), "v1.5" in the 3x3 (torchvision)
    groups: int = 1  # ResNeXt cardinality
    base_width: int = 64  # width per group (ResNeXt) / width multiplier * 64 (Wide ResNet)
    num_classes: int = 1000
    in_chans: int = 3
    zero_init_residual: bool = False
    output_stride: int | None = None  # None: native (32 ImageNet, 4 CIFAR); 8 / 16 dilate the last stages
    drop_rate: float = 0.0  # dropout probability: before the classifier, or inside the blocks with drop_in_blocks
    drop_in_blocks: bool = False  # dropout between the 3x3 convolutions of each pre-activation block (Wide ResNet)
    head_pool: str = "avg"  # global pooling before the classifier: "avg" (the paper) or "max" (Page's ResNet-9)
    logit_scale: float = 1.0  # the classifier's output is multiplied by this (Page's ResNet-9: 0.125)
    fc_bias: bool = True
    # "pool" block: max-pool straight after each stage's opening convolution, before its batch norm and ReLU
    # (Page 2019: the same network at a quarter of those layers' work; the state dict does not change)
    pool_first: bool = False
    activation: str = "relu"  # one of ACTIVATIONS ("gelu" / "celu": "pool" block only); no parameters, same state dict
    family: str = "resnet"  # a label only (resnet / plain / resnext / wide_resnet / preresnet / wrn): builds nothing
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def data_config(self) -> DataConfig:
        """The stem's default input convention (size, resize, crop, whose statistics), as timm's ``_cfg()``."""
        return data_config(self.stem)

    @property
    def native_stride(self) -> int:
        stem = 4 if self.stem == "imagenet" else 1
        return stem * 2 ** (len(self.layers) - (0 if self.block == "pool" else 1))

    @property
    def effective_output_stride(self) -> int:
        return self.native_stride if self.output_stride is None else self.output_stride

    @property
    def depth(self) -> int:
        if self.block == "pool":  # the stem, one opening conv per stage, two per residual pair, the classifier
            return 2 + sum(1 + 2 * n for n in self.layers)
        per_block = 2 if self.block == "basic" else 3
        return per_block * sum(self.layers) + 2

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what is allowed."""
        if self.block not in BLOCK_KINDS:
            raise ValueError(f"block must be one of {', '.join(map(repr, BLOCK_KINDS))}, got {self.block!r}")
        if self.head_pool not in HEAD_POOLS:
            raise ValueError(f"head_pool must be one of {', '.join(map(repr, HEAD_POOLS))}, got {self.head_pool!r}")
        if not self.logit_scale > 0:
            raise ValueError(f"logit_scale must be positive, got {self.logit_scale}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, got {self.activation!r}")
        if self.shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(
                f"unknown shortcut option {self.shortcut!r}; allowed: 'A' (zero-pad), 'B' (project when the "
                "shape changes), 'C' (project always) or 'none' (plain network)"
            )
        if self.version not in VERSIONS:
            raise ValueError(f"version must be 'v1' (stride in the first 1x1, paper) or 'v1.5' (stride in the 3x3), got {self.version!r}")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.block == "pool":
            self._validate_pool_block()
        else:
            self._validate_not_pool_fields()
        if self.block != "pool" and (not self.layers or any(n < 1 for n in self.layers)):
            raise ValueError(f"layers must be a non-empty tuple of positive block counts, got {self.layers}")
        if len(self.widths) != len(self.layers):
            raise ValueError(f"widths {self.widths} must have one entry per stage of layers {self.layers}")
        for name in ("num_classes", "in_chans", "stem_width", "groups", "base_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.block != "bottleneck" and (self.groups != 1 or self.base_width != 64):
            raise ValueError("grouped or widened 3x3 convolutions need the 'bottleneck' block (basic allows groups=1, base_width=64)")
        if self.block == "bottleneck":
            for i, planes in enumerate(self.widths):
                per_group = planes * self.base_width / 64.0
                if per_group < 1 or per_group != int(per_group):
                    raise ValueError(
                        f"groups={self.groups} with base_width={self.base_width} does not divide stage {i + 1}'s "
                        f"bottleneck width evenly ({planes} planes x {self.base_width}/64 = {per_group:g} channels per "
                        "group); choose base_width so that planes * base_width is a positive multiple of 64"
                    )
        allowed = [self.native_stride >> k for k in range(len(self.layers)) if self.native_stride >> k >= (4 if self.stem == "imagenet" else 1)]
        if self.output_stride is not None and self.output_stride not in allowed:
            raise ValueError(f"output_stride must be one of {sorted(allowed)} for this network, got {self.output_stride}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if self.drop_in_blocks and not (self.preact and self.block == "basic"):
            raise ValueError("drop_in_blocks needs pre-activation basic blocks (preact=True, block='basic'), as Wide "
                             "ResNets have; leave it False to drop out before the classifier")

    def _validate_pool_block(self) -> None:
        if not self.layers or any(not isinstance(n, int) or n < 0 for n in self.layers):
            raise ValueError(f"layers must be a non-empty tuple of residual-pair counts >= 0, got {self.layers}")
        if self.stem != "cifar" or self.preact or self.shortcut not in ("B", "none"):
            raise ValueError("the 'pool' block takes the cifar stem, post-activation and identity shortcuts "
                             f"(shortcut 'B', or 'none' for the plain twin); got stem {self.stem!r}, preact "
                             f"{self.preact}, shortcut {self.shortcut!r}")
        if self.output_stride is not None:
            raise ValueError("output_stride is not available for the 'pool' block (its stages always pool)")

    def _validate_not_pool_fields(self) -> None:
        if self.pool_first:
            raise ValueError(f"pool_first needs the 'pool' block (Page's ResNet-9 family), got block {self.block!r}")
        if self.activation != "relu":
            raise ValueError(f"activation {self.activation!r} needs the 'pool' block (Page's ResNet-9 family); the "
                             f"{self.block!r} block uses 'relu'")


def imagenet_spec(depth: int, **kw: Any) -> ModelSpec:
    block, layers = IMAGENET_DEPTHS[depth]
    return ModelSpec(block=block, layers=layers, widths=(64, 128, 256, 512), **kw)


def cifar_depth_to_n(depth: int) -> int:
    if depth < 8 or (depth - 2) % 6:
        examples = ", ".join(str(6 * n + 2) for n in range(1, 8))
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 ({examples}, ... 110, 1202), got {depth}")
    return (depth - 2) // 6


def cifar_spec(depth: int, *, plain: bool = False, **kw: Any) -> ModelSpec:
    n = cifar_depth_to_n(depth)
    kw.setdefault("shortcut", "none" if plain else "A")
    return ModelSpec(
        block="basic",
        layers=(n, n, n),
        widths=(16, 32, 64),
        stem="cifar",
        stem_width=16,
        num_classes=10,
        family="plain" if plain else "resnet",
        description=f"CIFAR {'plain net' if plain else 'ResNet'}-{depth} (6n+2, n={n}), paper Sec. 4.2",
        **kw,
    )


def _registry() -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for depth in IMAGENET_DEPTHS:
        if depth == 10:
            continue
        table = "bottleneck (2, 2, 2, 2), as timm's" if depth == 26 else "paper Table 1"
        specs[f"resnet{depth}"] = imagenet_spec(depth, description=f"ResNet-{depth}, ImageNet ({table})")
        specs[f"plain{depth}"] = imagenet_spec(
            depth, shortcut="none", family="plain", description=f"plain-{depth}: ResNet-{depth} without shortcuts"
        )
    specs["resnext50_32x4d"] = imagenet_spec(50, groups=32, base_width=4, family="resnext", description="ResNeXt-50 32x4d")
    specs["resnext101_32x8d"] = imagenet_spec(101, groups=32, base_width=8, family="resnext", description="ResNeXt-101 32x8d")
    specs["resnext101_64x4d"] = imagenet_spec(101, groups=64, base_width=4, family="resnext", description="ResNeXt-101 64x4d")
    specs["wide_resnet50_2"] = imagenet_spec(50, base_width=128, family="wide_resnet", description="Wide ResNet-50-2")
    specs["wide_resnet101_2"] = imagenet_spec(101, base_width=128, family="wide_resnet", description="Wide ResNet-101-2")
    for depth in CIFAR_REGISTERED_DEPTHS:
        name = f"resnet{depth}"
        specs[name if name not in specs else f"cifar_resnet{depth}"] = cifar_spec(depth)
        specs[f"plain{depth}"] = cifar_spec(depth, plain=True)
    for depth, block, n in ((110, "basic", 18), (164, "bottleneck", 18), (1001, "bottleneck", 111)):
        specs[f"preresnet{depth}"] = ModelSpec(
            block=block, layers=(n, n, n), widths=(16, 32, 64), stem="cifar", stem_width=16, shortcut="B",
            preact=True, num_classes=10, family="preresnet",
            description=f"pre-activation ResNet-{depth}, CIFAR (Identity Mappings paper)",
        )
    specs["resnet9"] = ModelSpec(
        block="pool", layers=(1, 0, 1), widths=(128, 256, 512), stem="cifar", stem_width=64, num_classes=10,
        head_pool="max", logit_scale=0.125, fc_bias=False,
        description="ResNet-9 (Page 2018, DAWNBench CIFAR-10): prep conv, three conv + max-pool stages, "
                    "residual pairs after the first and the last; 6,573,120 parameters",
    )
    specs["resnet9_lite"] = dataclasses.replace(
        specs["resnet9"], widths=(64, 256, 256), stem_width=32, pool_first=True,
        description="ResNet-9 at a third of the work (133 M multiply-adds against 379 M): airbench94's widths "
                    "(Jordan 2024) in Page's network, pooling before batch norm; 2,015,008 parameters",
    )
    for depth, k in ((16, 8), (28, 10)):
        n = (depth - 4) // 6
        specs[f"wrn{depth}_{k}"] = ModelSpec(
            block="basic", layers=(n, n, n), widths=(16 * k, 32 * k, 64 * k), stem="cifar", stem_width=16,
            shortcut="B", preact=True, num_classes=10, drop_in_blocks=True, family="wrn",
            description=f"Wide ResNet-{depth}-{k}, CIFAR (Zagoruyko & Komodakis)",
        )
    return specs


MODEL_SPECS: dict[str, ModelSpec] = _registry()

_CIFAR_NAME = re.compile(r"^(cifar_resnet|resnet|plain|cifar_plain)(\d+)$")


def resolve_spec(name: str) -> ModelSpec | None:
    """The spec for ``name``: registered names first, then any CIFAR ``resnet{6n+2}`` / ``plain{6n+2}``.

    ``cifar_resnet50`` / ``cifar_plain50`` reach the CIFAR nets whose depth collides with an
    ImageNet name (50, 152, 200). Raises ``ValueError`` for a CIFAR-style name whose depth is not 6n+2.
    """
    if name in MODEL_SPECS:
        return MODEL_SPECS[name]
    match = _CIFAR_NAME.match(name)
    if match is None:
        return None
    prefix, depth = match.group(1), int(match.group(2))
    return cifar_spec(depth, plain="plain" in prefix)


def with_overrides(spec: ModelSpec, **overrides: Any) -> ModelSpec:
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; allowed: {sorted(known - {'extra', 'family', 'description'})}")
    if "layers" in overrides:
        overrides["layers"] = tuple(overrides["layers"])
    if "widths" in overrides:
        overrides["widths"] = tuple(overrides["widths"])
    if "shortcut" in overrides and isinstance(overrides["shortcut"], str) and overrides["shortcut"] != "none":
        overrides["shortcut"] = overrides["shortcut"].upper()
    out = dataclasses.replace(spec, **overrides)
    out.validate()
    return out
