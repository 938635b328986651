"""Why a network predicts what it does: class-activation maps (Grad-CAM, Grad-CAM++, Score-CAM).

>>> import resnet
>>> heatmap, overlay = resnet.explain(model, "photo.jpg")              # Grad-CAM of the top class
>>> heatmap, overlay = resnet.explain(member, image, method="scorecam", target=3)

``model`` is a network (ours, or a torchvision / timm ResNet) or a :class:`~resnet.inference.Network`
(from :func:`~resnet.evaluate.resolve_source`; its preprocessing is then used, and its float network
is explained whatever deploy mode it runs). ``image`` is a path, a PIL image, a uint8 tensor
``[C, H, W]`` or a uint8 array ``[H, W, C]``. The image is resized and centre-cropped as the network
sees it; ``heatmap`` is float32 ``[h, w]`` in [0, 1] over that view and ``overlay`` the uint8 RGB view
with the heatmap drawn over it. Nothing heavy is imported until the first call.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .methods import METHODS  # the CAM methods, names as the CLI and the server take them

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from ..evaluate.preprocess import Preprocess



def explain(
    model: Any,
    image: "str | os.PathLike[str] | Any",
    method: str = "gradcam",
    target: int | None = None,
    *,
    preprocess: "Preprocess | None" = None,
) -> "tuple[np.ndarray, np.ndarray]":
    """``(heatmap, overlay)`` for ``image``: see the module docstring; ``target`` is a class index
    (``None``: the most likely class)."""
    from ..evaluate.preprocess import network_input
    from .cam import cam_maps, float_model, overlay

    pre = preprocess or preprocess_of(model)
    view = network_view(image, pre)
    heatmap = cam_maps(float_model(model), network_input(view[None], pre), method, [target])[0]
    return heatmap, overlay(view.permute(1, 2, 0).numpy(), heatmap)


def preprocess_of(model: Any) -> "Preprocess":
    """A member's preprocessing, else the default for the network's stem (CIFAR 32 px, ImageNet 256/224)."""
    from ..data.defaults import default_preprocess

    pre = getattr(model, "preprocess", None)
    if pre is not None and hasattr(model, "model"):
        return pre
    return default_preprocess(getattr(model, "spec", None))


def network_view(image: Any, pre: "Preprocess") -> "Tensor":
    """uint8 ``[C, h, w]``: ``image`` decoded (if a path), resized and centre-cropped as the network sees it."""
    from ..evaluate.preprocess import match_channels
    from ..inference.protocols import center_view

    img = as_uint8_chw(image, pre.channels)  # channels-last views stay so: the resize reads them directly
    return center_view(match_channels(img, pre.channels)[None], pre)[0].contiguous()


def as_uint8_chw(image: Any, channels: int = 3) -> "Tensor":
    """A path (through :func:`resnet.data.decode.read_image`), PIL image, ``[H, W, C]`` array or
    ``[C, H, W]`` tensor as a uint8 ``[C, H, W]`` tensor (a view of an array or tensor given, not a copy)."""
    import numpy as np
    import torch

    from ..errors import UsageError
    from ..data.decode import read_image

    if isinstance(image, (str, os.PathLike)):
        return read_image(image, channels)
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL
        from ..data.decode import to_array

        image = to_array(image, channels)
    if isinstance(image, np.ndarray):
        array = image[:, :, None] if image.ndim == 2 else image
        image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.dtype != torch.uint8:
        raise UsageError("explain takes an image path, a PIL image, a uint8 [H, W, C] array or a uint8 [C, H, W] tensor")
    return image


__all__ = ["METHODS", "as_uint8_chw", "explain", "network_view", "preprocess_of"]
