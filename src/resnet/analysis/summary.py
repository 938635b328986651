"""One network's per-stage table in the style of the paper's Table 1, and the paper's networks beside its figures.

What ``resnet summary`` prints (the command only formats these): parameters and multiply-adds are counted from the
modules (:mod:`resnet.models.complexity`), never looked up; the published figures come from :mod:`resnet.reference`.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from ..errors import UsageError
from ..models.data_config import default_input_size
from ..utils.limits import MAX_SIDE
from ..utils.threads import single_threaded

MIN_SIDE = 8  # the smallest input every registered network still reduces to a 1x1 map


def model_summary(name: str, input_size: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Stages of ``name`` (built with ``overrides``; ``None`` values are left out) at ``input_size`` (default: its
    stem's), with their output size, blocks, channels, parameters and multiply-adds."""
    import torch

    from ..inference.load import build_network
    from ..models.complexity import count_macs

    if input_size is not None and not MIN_SIDE <= input_size <= MAX_SIDE:
        raise UsageError(f"`input_size` must be from {MIN_SIDE} to {MAX_SIDE} pixels, got {input_size}")
    model = build_network(name, **{k: v for k, v in overrides.items() if v is not None})
    spec = model.spec
    size = input_size or spec.data_config.input_size
    with torch.no_grad(), single_threaded():  # one batch-of-one pass to count; no activations kept, no threads needed
        c = count_macs(model, size)
    stages = [{"stage": s.name, "output_size": f"{s.output_size[0]}x{s.output_size[1]}", "blocks": s.blocks,
               "channels": s.channels, "params": s.params, "macs": s.macs} for s in c.stages]
    return {"name": name, "description": spec.description, "block": ("pre-activation " if spec.preact else "") + spec.block,
            "shortcut": spec.shortcut, "version": spec.version, "input_size": size, "params": c.params, "macs": c.macs,
            "stages": stages}


def paper_rows() -> dict[str, list[dict[str, Any]]]:
    """``{"imagenet": [...], "cifar": [...]}``: each of the paper's networks, counted, beside its published figures
    (and torchvision's for the ImageNet ones). A copy: the counts are made once per process."""
    return copy.deepcopy(_paper_rows())


@functools.lru_cache(maxsize=1)
def _paper_rows() -> dict[str, list[dict[str, Any]]]:
    """The figures are counted once per process (building and running ResNet-152 and -1202 takes a while)."""
    with single_threaded():  # batch-of-one passes that only count: threads only add waiting on a busy machine
        return {"imagenet": imagenet_rows(), "cifar": cifar_rows()}


def imagenet_rows() -> list[dict[str, Any]]:
    """The paper's ImageNet nets, v1 (its stride placement) and v1.5, beside Table 1 and torchvision."""
    from ..models import create_model
    from ..models.complexity import count_macs
    from ..reference import PAPER_IMAGENET_GMACS, TORCHVISION_GMACS, TORCHVISION_PARAMS

    size = default_input_size("imagenet")
    rows = []
    for depth, paper in PAPER_IMAGENET_GMACS.items():
        v1 = count_macs(create_model(f"resnet{depth}", version="v1"), size)
        v15 = count_macs(create_model(f"resnet{depth}"), size)
        rows.append({"name": f"resnet{depth}", "params": v15.params, "params_torchvision": TORCHVISION_PARAMS[depth],
                     "gmacs_v1": round(v1.macs / 1e9, 3), "gmacs_paper": paper, "gmacs_v1.5": round(v15.macs / 1e9, 3),
                     "gmacs_torchvision": TORCHVISION_GMACS[depth]})
    return rows


def cifar_rows() -> list[dict[str, Any]]:
    """The paper's CIFAR-10 nets (option A) beside Table 6's parameters and test errors."""
    from ..models import create_model
    from ..models.complexity import count_macs
    from ..reference import PAPER_CIFAR_ERR, PAPER_CIFAR_PARAMS_M

    size = default_input_size("cifar")
    rows = []
    for depth, paper_params in PAPER_CIFAR_PARAMS_M.items():
        c = count_macs(create_model(f"resnet{depth}"), size)
        rows.append({"name": f"resnet{depth}", "params": c.params, "params_paper_M": paper_params,
                     "mmacs": round(c.macs / 1e6, 2), "paper_test_error": PAPER_CIFAR_ERR[depth]})
    return rows
