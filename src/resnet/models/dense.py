"""Detection and segmentation models: torchvision's heads on our backbones, and its checkpoints loaded into them.

>>> from resnet.models.dense import create_dense_model, load_torchvision_dense
>>> model = create_dense_model("maskrcnn", "resnet50", num_classes=91)
>>> load_torchvision_dense(model, "maskrcnn_resnet50_fpn.pth")   # torchvision's state_dict, names mapped

The heads are torchvision's (``FasterRCNN``, ``MaskRCNN``, ``RetinaNet``, ``DeepLabV3``, ``FCN``), built the
way its ``*_resnet50_fpn`` / ``deeplabv3_resnet50`` / ``fcn_resnet50`` builders build them, so one of its
checkpoints gives the same outputs in the model built here.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import CheckpointError, UsageError
from .backbone import FPN_CHANNELS, backbone

DETECTION_HEADS = ("fasterrcnn", "maskrcnn", "retinanet")
SEGMENTATION_HEADS = ("deeplabv3", "fcn")
HEADS = DETECTION_HEADS + SEGMENTATION_HEADS
# torchvision's key prefixes, mapped to ours: its names are kept, so only wrappers are removed.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


def create_dense_model(
    head: str,
    backbone_name: str = "resnet50",
    num_classes: int = 91,
    *,
    pretrained_backbone: str | os.PathLike[str] | None = None,
    trainable_layers: int = 3,
    output_stride: int = 8,
    aux: bool = False,
    backbone_overrides: Mapping[str, Any] | None = None,
    **head_kwargs: Any,
) -> nn.Module:
    """torchvision's ``head`` on our ``backbone_name``.

    ``num_classes`` counts the background (torchvision's convention). ``output_stride`` and ``aux`` apply to
    the segmentation heads (torchvision's ``deeplabv3_resnet50`` / ``fcn_resnet50`` use 8). ``head_kwargs``
    go to torchvision's class (``min_size``, ``max_size``, ``box_score_thresh`` ...).
    """
    from torchvision.models.detection import FasterRCNN, MaskRCNN, RetinaNet
    from torchvision.models.segmentation import DeepLabV3, FCN
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead
    from torchvision.models.segmentation.fcn import FCNHead
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    if head not in HEADS:
        raise UsageError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if num_classes < 2 and head != "retinanet":
        raise UsageError(f"num_classes counts the background and must be at least 2, got {num_classes}")
    common = dict(pretrained=pretrained_backbone, trainable_layers=trainable_layers, **dict(backbone_overrides or {}))
    if head in ("fasterrcnn", "maskrcnn"):
        net = backbone(backbone_name, fpn=True, **common)
        return (FasterRCNN if head == "fasterrcnn" else MaskRCNN)(net, num_classes=num_classes, **head_kwargs)
    if head == "retinanet":
        from torchvision.models.detection.retinanet import _default_anchorgen

        # torchvision's retinanet_resnet50_fpn: P3-P5 from the stages, P6/P7 from P5 (its v1 layout)
        net = backbone(backbone_name, fpn=True, returned_layers=(2, 3, 4),
                       extra_blocks=LastLevelP6P7(FPN_CHANNELS, FPN_CHANNELS), **common)
        head_kwargs.setdefault("anchor_generator", _default_anchorgen())
        return RetinaNet(net, num_classes, **head_kwargs)
    net = backbone(backbone_name, fpn=False, output_stride=output_stride, aux=aux, **common)
    make_head = DeepLabHead if head == "deeplabv3" else FCNHead
    aux_head = FCNHead(net.aux_channels, num_classes) if aux else None
    return (DeepLabV3 if head == "deeplabv3" else FCN)(net, make_head(net.out_channels, num_classes), aux_head, **head_kwargs)


def map_torchvision_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's detection / segmentation names to ours.

    The layouts are the same by design (``backbone.body.layer1.0.conv1.weight``, ``backbone.fpn.*``,
    ``rpn.*``, ``roi_heads.*``, ``classifier.*``, ``aux_classifier.*``), so only wrapper prefixes
    (DataParallel's ``module.``, ``torch.compile``'s ``_orig_mod.``) are removed; the backbone's
    classifier (``fc.*``), which these models never hold, is dropped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith(("backbone.fc.", "backbone.body.fc.")):
            continue
        out[key] = value
    return out


def set_batchnorm_eps(model: nn.Module, eps: float) -> None:
    """Every (frozen) BatchNorm's ``eps``: torchvision's COCO_V1 detection weights were trained with 0.0, and
    its builders set that after loading them (``overwrite_eps``); the value is not in the file."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for module in model.modules():
        if isinstance(module, (FrozenBatchNorm2d, nn.BatchNorm2d)):
            module.eps = eps


def load_torchvision_dense(model: nn.Module, path: str | os.PathLike[str], *, bn_eps: float | None = None) -> None:
    """Load torchvision's detection / segmentation checkpoint ``path`` (read without running code) into
    ``model`` from :func:`create_dense_model`; a file of another network or head is a one-line error
    naming the mismatched keys. ``bn_eps=0.0`` for torchvision's COCO_V1 detection weights."""
    from .interop import load_into, read_state_dict

    state_dict, _ = read_state_dict(path)
    mapped = map_torchvision_keys(state_dict)
    # FrozenBatchNorm2d holds no num_batches_tracked; a file with them loads into either kind of BN.
    own = set(model.state_dict())
    mapped = {k: v for k, v in mapped.items() if not (k.endswith("num_batches_tracked") and k not in own)}
    load_into(model, mapped, origin=str(path))
    if bn_eps is not None:
        set_batchnorm_eps(model, bn_eps)


def dense_task(head: str) -> str:
    """``detection`` or ``segmentation``."""
    if head not in HEADS:
        raise CheckpointError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
    return "detection" if head in DETECTION_HEADS else "segmentation"


def dense_model_from_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a detector / segmenter of ``resnet train --task ...`` from its weights file or run folder."""
    from .interop import load_into, read_state_dict

    state_dict, meta = read_state_dict(path)
    info = meta.get("dense")
    if not isinstance(info, dict) or meta.get("task") not in ("detection", "segmentation"):
        raise CheckpointError(f"{path} is not a detection or segmentation checkpoint of a dense training run (`task` detection or segmentation)")
    try:
        head, name, num_classes = str(info["head"]), str(info["backbone"]), int(info["num_classes"])
        options, overrides = dict(info["head_options"]), dict(info.get("backbone_overrides") or {})
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in options.values()):
            raise ValueError(f"head options must be numbers, got {options}")
        model = create_dense_model(head, name, num_classes, backbone_overrides=overrides, **options)
    except (KeyError, TypeError, ValueError, UsageError) as err:
        raise CheckpointError(f"{path}: its model metadata is invalid ({err}); the file was altered, use another copy") from None
    load_into(model, state_dict, origin=str(path))
    model.eval()
    return model, meta
