"""resnet: deep residual networks (He, Zhang, Ren, Sun, CVPR 2016) for daily use.

>>> import resnet
>>> model = resnet.create_model("resnet56")          # CIFAR, option-A shortcuts, as in the paper
>>> model = resnet.create_model("resnet50", version="v1", num_classes=100)
>>> resnet.load_pretrained(model, "weights.pth")     # torchvision / timm / akamaster / ours
>>> fpn = resnet.backbone("resnet50")                # for torchvision's FasterRCNN / MaskRCNN / RetinaNet
>>> heatmap, overlay = resnet.explain(model, "photo.jpg")  # Grad-CAM of the top class
"""

from typing import TYPE_CHECKING

from .explain import explain  # light: grad-cam and PyTorch are imported on the first call. Eager, because a
from .utils.lazy import lazy_attributes  # lazy attribute named like its subpackage would be shadowed by it

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .models import MODEL_SPECS, ModelSpec, ResNet, UnknownModelError, get_spec, list_models, load_pretrained
    from .weights import backbone, create_model

__all__ = [
    "MODEL_SPECS", "ModelSpec", "ResNet", "UnknownModelError", "create_model", "get_spec", "list_models",
    "load_pretrained", "backbone", "explain", "__version__",
]
# PyTorch is imported on first use of a model attribute, not by `import resnet` (the CLI starts faster).
# create_model and backbone take pretrained weights, so they are the weights layer's (it builds on models).
__getattr__ = lazy_attributes(
    __name__, {**dict.fromkeys(__all__[:-3], "models"), "create_model": "weights", "backbone": "weights"}
)
