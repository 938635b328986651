"""Evaluation as the paper does it: test protocols, metrics, ensembles, and loading what to evaluate."""

from .ensemble import EvalReport, Result, evaluate
from .metrics import Accumulator
from .preprocess import Preprocess
from .protocols import PROTOCOLS, Center, Flip, MultiScale, Network, TenCrop, fully_convolutional_logits, get_protocol
from .sources import Member, apply_optimize, resolve_source

__all__ = [
    "Accumulator", "Center", "EvalReport", "Flip", "Member", "MultiScale", "Network", "PROTOCOLS", "Preprocess", "Result",
    "TenCrop", "apply_optimize", "evaluate", "fully_convolutional_logits", "get_protocol", "resolve_source",
]
