"""Class-activation maps of our networks through the ``grad-cam`` package (pytorch-grad-cam).

The map is taken on the output of the last stage (after the final BN/ReLU of pre-activation nets),
the feature map the classifier pools: the resolution is the network's total stride (8x8 for a
CIFAR net at 32 pixels, 7x7 for an ImageNet net at 224). Grad-CAM weighs its channels by the
pooled gradient of the target class score, Grad-CAM++ by positive second-order terms, Score-CAM by
the class score of the input masked with each channel (one forward pass per channel: slow on wide nets).

The float network is always the one explained: an int8 or fused deploy module has no gradients;
:func:`float_model` finds the float network behind a :class:`~resnet.inference.Network`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UsageError

from .methods import METHODS
SCORECAM_BATCH = 64  # masked inputs per forward pass in Score-CAM


def target_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the last feature map of ``model`` (ours, torchvision's or timm's ResNets)."""
    stages = getattr(model, "stage_names", None)
    if stages:
        final = getattr(model, "final_relu", None)
        if final is not None and not isinstance(final, nn.Identity):
            return final  # pre-activation nets: the last stage's output still goes through BN and ReLU
        return getattr(model, stages[-1])
    for name in ("layer4", "layer3"):  # torchvision / timm ResNets
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise UsageError(
        f"cannot find the last stage of {type(model).__name__} to explain; pass the float network "
        "(a resnet.create_model / checkpoint model), not the result of resnet.deploy.optimize"
    )


def float_model(model: Any) -> nn.Module:
    """``model`` itself, or the float network of a :class:`~resnet.inference.Network` (whatever its deploy mode)."""
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(model, "preprocess") and isinstance(inner, nn.Module):
        return inner
    if not isinstance(model, nn.Module):
        raise UsageError(f"explain needs a network (torch.nn.Module) or a resnet.inference.Network, got {type(model).__name__}")
    if not any(p.is_floating_point() for p in model.parameters()):
        raise UsageError("explain needs the float network; an int8 or fused deploy module has no gradients to explain")
    return model


class _Scores(nn.Module):
    """Class scores of a classifier, or for a backbone without one (``features_only`` or ``num_classes=0``)
    the pooled last feature map, whose sum is then the explained score."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        return out.mean(dim=(2, 3)) if out.ndim == 4 else out


def has_classifier(model: nn.Module) -> bool:
    return not getattr(model, "features_only", False) and isinstance(getattr(model, "fc", None), nn.Linear)


def _targets(model: nn.Module, classes: Sequence[int | None] | None, n: int) -> list[Callable[[Tensor], Tensor]] | None:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if not has_classifier(model):
        return [lambda out: out.sum(dim=-1)] * n  # a backbone: what drives its features as a whole
    if classes is None or all(c is None for c in classes):
        return None  # grad-cam explains each image's top class
    if len(classes) != n:
        raise UsageError(f"give one target class per image: {len(classes)} targets for {n} images")
    num = int(getattr(model, "num_classes", 0)) or None
    out: list[Callable[[Tensor], Tensor]] = []
    for c in classes:
        if c is not None and num is not None and not 0 <= int(c) < num:
            raise UsageError(f"target class {c} is out of range; the network has {num} classes (0 to {num - 1})")
        out.append(ClassifierOutputTarget(int(c)) if c is not None else (lambda o: o.max(dim=-1).values))
    return out


def cam_maps(model: nn.Module, inputs: Tensor, method: str = "gradcam", targets: Sequence[int | None] | None = None) -> np.ndarray:
    """float32 ``[N, H, W]`` maps in [0, 1] at the input's size, for normalised float ``inputs [N, C, H, W]``.

    ``targets`` gives each image's class (``None``: its most likely class).
    """
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM

    if method not in METHODS:
        raise UsageError(f"unknown explain method {method!r}; choose one of {', '.join(METHODS)}")
    net = float_model(model)
    layer = target_layer(net)
    kind = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM}[method]
    was_training = net.training
    net.eval()
    try:
        with torch.enable_grad(), kind(model=_Scores(net), target_layers=[layer]) as cam:
            if method == "scorecam":
                cam.batch_size = SCORECAM_BATCH
                _quiet_scorecam()
            maps = cam(input_tensor=inputs.float(), targets=_targets(net, targets, inputs.shape[0]))
    finally:
        net.train(was_training)
        net.zero_grad(set_to_none=True)
    return np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0).clip(0.0, 1.0)


def _quiet_scorecam() -> None:
    """grad-cam 1.5 draws a tqdm progress bar on stderr for every Score-CAM image (server logs, CLI
    output); it has no option to turn it off, so its module's ``tqdm`` is replaced by a silent one."""
    from types import SimpleNamespace

    from pytorch_grad_cam import score_cam

    score_cam.tqdm = SimpleNamespace(tqdm=lambda iterable, **_: iterable)  # type: ignore[attr-defined]


def overlay(view: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]``: the colour-mapped ``heatmap`` (``[H, W]`` in [0, 1]) blended over ``view``
    (uint8 ``[H, W, C]``, C = 1 or 3), as grad-cam's ``show_cam_on_image`` draws it."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    if view.ndim == 2:
        view = view[:, :, None]
    rgb = np.repeat(view, 3, axis=2) if view.shape[2] == 1 else view[:, :, :3]
    return show_cam_on_image(rgb.astype(np.float32) / 255.0, heatmap, use_rgb=True, image_weight=image_weight)
