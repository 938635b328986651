"""The optimizer, built from a parameter-group plan: :func:`group_plan` -> :func:`build_optimizer`.

A plan lists the optimizer's groups (which parameters, their learning-rate factor, their weight decay).
Training from scratch splits the parameters by decay only; fine-tuning (``init`` or frozen parts) also
splits the new head from the pretrained backbone, which trains at ``lr * backbone_lr_scale``. Frozen
tensors are in no group. A new kind of group (discriminative rates per stage, a second head) is a new
part in :func:`group_plan`; the trainer and the checkpoints need no change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from .recipes import Recipe

HEAD_PREFIX = "fc."  # the classifier's parameter names


@dataclass(frozen=True)
class GroupPlan:
    """One optimizer group: which parameters, their learning-rate factor and weight decay."""

    name: str
    params: tuple[nn.Parameter, ...]
    lr_scale: float
    weight_decay: float


def group_plan(model: nn.Module, recipe: Recipe, pretrained: bool, *, split_head: bool = True) -> list[GroupPlan]:
    """The groups of ``model``'s trainable tensors: by decay (``decay_bn_and_bias`` off: 1-d tensors
    undecayed), with ``bias_lr_scale`` != 1 the 1-d tensors (batch-norm shifts and scales, biases) apart at
    ``lr * bias_lr_scale`` and ``weight_decay / bias_lr_scale``, and, with ``split_head``, head vs backbone (the
    backbone at ``backbone_lr_scale`` when ``pretrained``). Frozen tensors are left out.

    The order of the groups is part of the checkpoint format (optimizer state is matched by position):
    without ``split_head`` decayed tensors come first; with it the groups sort by (part, decays); the
    rescaled 1-d tensors follow the others of their part and decay.
    """
    backbone_scale = recipe.backbone_lr_scale if pretrained else 1.0
    buckets: dict[tuple[str, bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = ("head" if name.startswith(HEAD_PREFIX) else "backbone") if split_head else "all"
        decays = recipe.decay_bn_and_bias or param.ndim > 1
        rescaled = recipe.bias_lr_scale != 1.0 and param.ndim <= 1
        buckets.setdefault((part, decays, rescaled), []).append(param)
    order = sorted(buckets) if split_head else sorted(buckets, key=lambda key: (not key[1], key[2]))
    return [_plan(key, tuple(buckets[key]), recipe, backbone_scale) for key in order]


def _plan(key: tuple[str, bool, bool], params: tuple[nn.Parameter, ...], recipe: Recipe, backbone_scale: float) -> GroupPlan:
    part, decays, rescaled = key
    scale = recipe.bias_lr_scale if rescaled else 1.0
    name = f"{part}{'' if decays else ' (no decay)'}{' 1-d' if rescaled else ''}"
    return GroupPlan(name, params, (backbone_scale if part == "backbone" else 1.0) * scale,
                     (recipe.weight_decay if decays else 0.0) / scale)


def param_groups(plans: list[GroupPlan]) -> list[dict[str, Any]]:
    """``torch.optim`` groups of ``plans``; the trainer sets each group's lr to ``lr * lr_scale``."""
    return [{"params": list(p.params), "lr_scale": p.lr_scale, "weight_decay": p.weight_decay, "name": p.name} for p in plans]


def build_optimizer(plans: list[GroupPlan], recipe: Recipe) -> torch.optim.Optimizer:
    """SGD with the recipe's momentum over the groups of ``plans``, inside Lookahead when the recipe asks.
    (PyTorch's default for-each update: its fused CPU kernel measured no faster for ResNet-20, within the
    spread of repeated runs, docs/results/train/cpu-xeon-amx/.)"""
    sgd = torch.optim.SGD(param_groups(plans), lr=recipe.lr, momentum=recipe.momentum,
                          nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay)
    if not recipe.lookahead_k:
        return sgd
    try:
        from timm.optim import Lookahead
    except ImportError:
        raise UsageError("lookahead_k uses timm's Lookahead: pip install 'resnet[interop]', or set lookahead_k=0") from None
    return Lookahead(sgd, alpha=recipe.lookahead_alpha, k=recipe.lookahead_k)


def group_notes(optimizer: torch.optim.Optimizer) -> str:
    """``parameter groups: backbone 1,234 params at lr x0.1; head ...``: one line about the groups."""
    return "parameter groups: " + "; ".join(
        f"{g['name']} {sum(p.numel() for p in g['params']):,} params at lr x{g['lr_scale']:g}" for g in optimizer.param_groups)
