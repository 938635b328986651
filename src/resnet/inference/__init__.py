"""The inference layer: one way to run a trained network fast, on the engine that is fastest here.

>>> fast = optimize(model, "int8", calibration=images)   # float NCHW in, logits out
>>> fast.engine                                           # 'ours', 'onnxruntime qdq', 'openvino', ...

It sits between the layers that make a network (models, data, weights) and those that use one (train,
evaluate, deploy, serve, explain): every engine is behind :mod:`.engines`, ``engine="auto"`` chooses among
them by measurement (:mod:`.choice`), and our own fused oneDNN engine lives in :mod:`.ours`.

Imported eagerly (unlike most packages): ``optimize`` is both a submodule and a function here, and a lazy
attribute would be shadowed by the submodule once it is imported. Nothing on the command line's start-up
path imports this package.
"""

from .engines import ENGINE_LABELS, engine_of
from .fold import fold_bn, fold_conv_bn
from .optimize import apply_optimize, optimize

__all__ = ["ENGINE_LABELS", "apply_optimize", "engine_of", "fold_bn", "fold_conv_bn", "optimize"]
