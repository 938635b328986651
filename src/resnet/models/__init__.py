"""Network definitions: blocks, specs, the ResNet module, the registry and checkpoint importers."""

from typing import TYPE_CHECKING

from ..utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut
    from .complexity import Complexity, count_macs, count_params
    from .interop import load_pretrained, read_state_dict
    from .network import ResNet
    from .registry import UnknownModelError, create_model, get_spec, list_models
    from .specs import MODEL_SPECS, ModelSpec

_EXPORTS = exports({
    "blocks": ["BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "ZeroPadShortcut"],
    "complexity": ["Complexity", "count_macs", "count_params"],
    "interop": ["load_pretrained", "read_state_dict"],
    "network": ["ResNet"],
    "registry": ["UnknownModelError", "create_model", "get_spec", "list_models"],
    "specs": ["MODEL_SPECS", "ModelSpec"],
})
__all__ = list(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)  # specs and registry names need no PyTorch
