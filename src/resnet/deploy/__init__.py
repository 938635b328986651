"""Fast inference and export: BN folding, fused oneDNN float and int8 runners, ONNX / TorchScript export,
and the benchmark behind ``resnet bench``.

>>> fast = optimize(model, "int8", calibration=images)   # float NCHW in, logits out
>>> export_onnx(model, "resnet50.onnx", dynamic_batch=True)
"""

from typing import TYPE_CHECKING

from ..utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from .export import FORMATS, ExportReport, export, export_onnx, export_torchscript
    from .fold import fold_bn, fold_conv_bn
    from .optimize import MODES, optimize

_EXPORTS = exports({
    "export": ["FORMATS", "ExportReport", "export", "export_onnx", "export_torchscript"],
    "fold": ["fold_bn", "fold_conv_bn"],
    "optimize": ["MODES", "optimize"],
})
__all__ = list(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
