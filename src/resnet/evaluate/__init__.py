"""Evaluation as the paper does it: metrics, ensembles, and loading what to evaluate; the test protocols it runs
are the inference layer's (:mod:`resnet.inference.protocols`, shared with the trainer), named here too."""

from typing import TYPE_CHECKING

from ..utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from ..inference.protocols import Center, Flip, MultiScale, Scorer, Shift, TenCrop, fully_convolutional_logits, get_protocol
    from .ensemble import EvalReport, Result, evaluate
    from .metrics import Accumulator
    from .names import PROTOCOLS
    from .preprocess import Preprocess
    from .sources import resolve_source

_EXPORTS = exports({
    "ensemble": ["EvalReport", "Result", "evaluate"],
    "metrics": ["Accumulator"],
    "names": ["PROTOCOLS"],
    "preprocess": ["Preprocess"],
    # the protocols live in the layer below (a leading dot climbs out of this package)
    ".inference.protocols": ["Center", "Flip", "MultiScale", "Scorer", "Shift", "TenCrop", "fully_convolutional_logits",
                             "get_protocol"],
    "sources": ["resolve_source"],
})
__all__ = list(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
