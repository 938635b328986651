"""Our networks as backbones of torchvision's detection and segmentation models.

:func:`backbone` returns a module with ``out_channels`` that torchvision's ``FasterRCNN``, ``MaskRCNN`` and
``RetinaNet`` take as they are (``fpn=True``: a feature pyramid over the stages), or, with ``fpn=False``,
the stages up to ``layer4`` as ``{"out": ..., "aux": ...}`` for its ``DeepLabV3`` / ``FCN`` heads
(``output_stride=8`` or ``16`` dilates the last stages).

Module names are torchvision's own (``body.layer1.0.conv1``, ``fpn.inner_blocks.0.0``, ``layer4`` ...), so
torchvision's detection and segmentation checkpoints load by name (see :mod:`resnet.models.dense`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

from torch import Tensor, nn

from ..errors import UsageError

FPN_CHANNELS = 256  # torchvision's FPN width
OUTPUT_STRIDES = (8, 16, 32)
# Trainable from the top: torchvision's order, so ``trainable_layers`` means what it means there.
_TRAINABLE_ORDER = ("layer4", "layer3", "layer2", "layer1", "conv1")


class StageGetter(nn.ModuleDict):
    """The network's modules from ``conv1`` up to its last returned stage, run in order; returns a dict of
    the named stages' outputs (torchvision's ``IntermediateLayerGetter`` for our modules, pre-activation
    nets included: their final BN/ReLU belongs to the last stage's output)."""

    def __init__(self, net: nn.Module, return_layers: dict[str, str]) -> None:
        names = ["conv1", "bn1", "relu", "maxpool", *net.stage_names]
        last = max(names.index(n) for n in return_layers)
        modules: OrderedDict[str, nn.Module] = OrderedDict((n, getattr(net, n)) for n in names[: last + 1])
        self_deferred = ""
        if names[last] == net.stage_names[-1]:
            modules["final_bn"], modules["final_relu"] = net.final_bn, net.final_relu
            self_deferred = names[last]
        super().__init__(modules)
        self.return_layers = dict(return_layers)
        self.deferred = self_deferred  # the last stage: its output is taken after final_bn / final_relu

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        out: OrderedDict[str, Tensor] = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers and name != self.deferred:
                out[self.return_layers[name]] = x
        if self.deferred:
            out[self.return_layers[self.deferred]] = x
        return out


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` by torchvision's ``FrozenBatchNorm2d`` (same statistics, no updates),
    as torchvision does for pretrained detection backbones trained with a few images per batch."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def _check_options(net: nn.Module, trainable_layers: int, output_stride: int, fpn: bool) -> None:
    name = getattr(net, "model_name", "this network")
    if net.spec.stem != "imagenet" or len(net.stage_names) != 4:
        raise UsageError(f"{name} is a CIFAR-style network; backbones are the ImageNet-style nets "
                         "(resnet18 ... resnet200, plain18 ..., resnext*, wide_resnet*)")
    if not 0 <= trainable_layers <= 5:
        raise UsageError(f"trainable_layers must be 0 to 5 (stages trained, from layer4 down to conv1), got {trainable_layers}")
    if output_stride not in OUTPUT_STRIDES:
        raise UsageError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
    if fpn and output_stride != 32:
        raise UsageError("a feature pyramid (fpn=True) takes the undilated network (output_stride=32); "
                         "dilated backbones (8, 16) are for DeepLabV3 / FCN heads, with fpn=False")


def set_trainable(body: nn.Module, trainable_layers: int) -> None:
    """Freeze all but the top ``trainable_layers`` stages (5: everything, including the stem's BN)."""
    train = list(_TRAINABLE_ORDER[:trainable_layers]) + (["bn1"] if trainable_layers == 5 else [])
    for name, param in body.named_parameters():
        if not any(name.startswith(layer) for layer in train):
            param.requires_grad_(False)


def backbone(
    name: str,
    pretrained: str | os.PathLike[str] | None = None,
    fpn: bool = True,
    trainable_layers: int = 3,
    output_stride: int = 32,
    *,
    returned_layers: Sequence[int] = (1, 2, 3, 4),
    extra_blocks: nn.Module | None = None,
    frozen_bn: bool | None = None,
    aux: bool = False,
    **overrides: object,
) -> nn.Module:
    """Network ``name`` as a detection (``fpn=True``) or segmentation (``fpn=False``) backbone.

    ``pretrained``: a weights file or run folder to start from (ours, or torchvision's / timm's classification
    weights); ``None`` starts from He init. Named weights (``NAME:TAG``) are fetched by :func:`resnet.backbone`
    (:func:`resnet.weights.backbone`), which then calls this.
    ``trainable_layers``: stages trained, counted from ``layer4`` (5: all), as torchvision's
    ``trainable_backbone_layers``; from random weights every stage trains, as torchvision does.
    ``frozen_bn``: BatchNorm frozen (torchvision's default with pretrained weights); default: frozen when
    ``pretrained`` is given. ``returned_layers`` / ``extra_blocks``: FPN levels (RetinaNet: ``(2, 3, 4)`` and
    ``LastLevelP6P7``). ``aux``: with ``fpn=False``, also return ``layer3`` as ``"aux"`` (auxiliary head).
    ``overrides``: ModelSpec fields (``version="v1"``, ``shortcut="C"`` ...).
    """
    from torchvision.models.detection.backbone_utils import BackboneWithFPN

    from .interop import load_pretrained
    from .registry import create_model

    try:
        net = create_model(name, features_only=True, output_stride=None if output_stride == 32 else output_stride,
                           **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None
    _check_options(net, trainable_layers, output_stride, fpn)
    if pretrained is not None:  # a classification checkpoint: its classifier is left out (features_only)
        load_pretrained(net, Path(pretrained))
    if frozen_bn if frozen_bn is not None else pretrained is not None:
        freeze_batchnorm(net)
    if fpn:
        if not returned_layers or any(i not in (1, 2, 3, 4) for i in returned_layers):
            raise UsageError(f"returned_layers must be stages among 1, 2, 3, 4, got {tuple(returned_layers)}")
        channels = [int(net.feature_info[i - 1]["num_chs"]) for i in returned_layers]
        result: nn.Module = BackboneWithFPN(
            nn.Identity(), {}, channels, FPN_CHANNELS, extra_blocks=extra_blocks
        )
        result.body = StageGetter(net, {f"layer{i}": str(k) for k, i in enumerate(returned_layers)})
        body = result.body
    else:
        layers = {"layer3": "aux", "layer4": "out"} if aux else {"layer4": "out"}
        result = body = StageGetter(net, layers)
        result.out_channels = int(net.feature_info[-1]["num_chs"])
        result.aux_channels = int(net.feature_info[-2]["num_chs"])
    set_trainable(body, trainable_layers if pretrained is not None else 5)
    result.model_name = name
    result.spec = net.spec
    return result
