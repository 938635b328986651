"""resnet: deep residual networks (He, Zhang, Ren, Sun, CVPR 2016) for daily use.

>>> import resnet
>>> model = resnet.create_model("resnet56")          # CIFAR, option-A shortcuts, as in the paper
>>> model = resnet.create_model("resnet50", version="v1", num_classes=100)
>>> resnet.load_pretrained(model, "weights.pth")     # torchvision / timm / akamaster / ours
>>> heatmap, overlay = resnet.explain(model, "photo.jpg")  # Grad-CAM of the top class
"""

from .models import (
    MODEL_SPECS,
    ModelSpec,
    ResNet,
    UnknownModelError,
    create_model,
    get_spec,
    list_models,
    load_pretrained,
)

from .explain import explain  # noqa: E402 - light: grad-cam is imported on the first call

__version__ = "0.1.0"

__all__ = [
    "MODEL_SPECS", "ModelSpec", "ResNet", "UnknownModelError", "create_model", "explain", "get_spec", "list_models",
    "load_pretrained", "__version__",
]
