"""Fast inference and export: BN folding, fused oneDNN float and int8 runners, export (.pt2, ONNX, OpenVINO IR;
TorchScript deprecated), publishing to the Hugging Face Hub (``resnet.deploy.publish``) and the benchmark behind
``resnet bench``.

>>> fast = optimize(model, "int8", calibration=images)   # float NCHW in, logits out
>>> fast = optimize(model, "int8", calibration=images, engine="auto", example_input=batch)  # fastest engine here
>>> fast.engine                                           # 'ours', 'onnxruntime qdq', ...
>>> export_onnx(model, "resnet50.onnx", dynamic_batch=True)

Imported eagerly (unlike the other packages): ``optimize`` and ``export`` are both submodules and
functions here, and a lazy attribute would be shadowed by the submodule once it is imported. Nothing
on the command line's start-up path imports this package.
"""

from .export import FORMATS, ExportReport, export, export_onnx, export_openvino, export_pt2, export_torchscript
from ..inference.engines import ENGINES, engine_of
from ..inference.fold import fold_bn, fold_conv_bn
from ..inference.optimize import MODES, optimize
from ..inference.prepare import apply_optimize

__all__ = [
    "ENGINES", "FORMATS", "MODES", "ExportReport", "apply_optimize", "engine_of", "export", "export_onnx", "export_openvino", "export_pt2", "export_torchscript", "fold_bn",
    "fold_conv_bn", "optimize",
]
