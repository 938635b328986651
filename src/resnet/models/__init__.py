"""Network definitions: blocks, specs, the ResNet module, the registry and checkpoint importers."""

from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut
from .interop import load_pretrained, read_state_dict
from .network import ResNet
from .registry import UnknownModelError, create_model, get_spec, list_models
from .specs import MODEL_SPECS, ModelSpec

__all__ = [
    "BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "ZeroPadShortcut", "ResNet",
    "ModelSpec", "MODEL_SPECS", "create_model", "get_spec", "list_models", "load_pretrained",
    "read_state_dict", "UnknownModelError",
]
