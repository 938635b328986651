"""Evaluation as the paper does it: test protocols, metrics, ensembles, and loading what to evaluate."""

from typing import TYPE_CHECKING

from ..utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from .ensemble import EvalReport, Result, evaluate
    from .metrics import Accumulator
    from .preprocess import Preprocess
    from .protocols import PROTOCOLS, Center, Flip, MultiScale, Network, TenCrop, fully_convolutional_logits, get_protocol
    from .sources import Member, resolve_source

_EXPORTS = exports({
    "ensemble": ["EvalReport", "Result", "evaluate"],
    "metrics": ["Accumulator"],
    "preprocess": ["Preprocess"],
    "protocols": ["PROTOCOLS", "Center", "Flip", "MultiScale", "Network", "TenCrop", "fully_convolutional_logits", "get_protocol"],
    "sources": ["Member", "resolve_source"],
})
__all__ = list(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
