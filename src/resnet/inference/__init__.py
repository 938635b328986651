"""The inference layer: running a trained network, the same way for every command, on the engine that is fastest here.

>>> net = load_network("runs/r20")                       # a Network: module, Preprocess, classes, metadata
>>> prepare(net, "int8")                                  # calibrated on the training data the run recorded
>>> fast = optimize(model, "int8", calibration=images)   # float NCHW in, logits out
>>> fast.engine                                           # 'ours', 'onnxruntime qdq', 'openvino', ...

It sits between the layers that make a network (models, data, weights) and those that use one (train,
evaluate, deploy, serve, explain): the one :class:`Network` type and its loading (:mod:`.load`), the test-time
views and protocols the trainer and ``resnet eval`` share (:mod:`.views`, :mod:`.protocols`), dense scoring
(:mod:`.dense`), where calibration images come from (:mod:`.calibration`) and the one preparation step
(:mod:`.prepare`). Every engine is behind :mod:`.engines`, ``engine="auto"`` chooses among them by measurement
(:mod:`.choice`), and our own fused oneDNN engine lives in :mod:`.ours`.

Imported eagerly (unlike most packages): ``optimize`` and ``prepare`` are both submodules and functions here, and
a lazy attribute would be shadowed by the submodule once it is imported. Nothing on the command line's start-up
path imports this package.
"""

from .engines import ENGINE_LABELS, engine_of
from .fold import fold_bn, fold_conv_bn
from .load import load_network
from .network import Network
from .optimize import optimize
from .prepare import apply_optimize, prepare
from .protocols import Scorer, get_protocol

__all__ = ["ENGINE_LABELS", "Network", "Scorer", "apply_optimize", "engine_of", "fold_bn", "fold_conv_bn", "get_protocol",
           "load_network", "optimize", "prepare"]
