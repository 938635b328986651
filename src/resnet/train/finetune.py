"""Fine-tuning: starting weights (``init``), a new head for the folder's classes, frozen parts, parameter groups.

Small pure steps the trainer calls in order: :func:`resolve_init` (before the data, whose preprocessing
follows the weights), :func:`apply_init` (after the network is built for the folder's classes),
:func:`freeze` (recipe field ``freeze=stem,layer1`` / ``all``: no gradient, batch norm frozen in eval
mode as torchvision's ``FrozenBatchNorm2d``). The optimizer's groups (the pretrained backbone at
``lr * backbone_lr_scale``, the new head at ``lr``) come from the plan of :mod:`resnet.train.optim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.preprocess import Preprocess
from ..errors import UsageError
from .optim import HEAD_PREFIX, group_notes
from .recipes import Recipe


@dataclass(frozen=True)
class InitWeights:
    """Weights to start from, as read from ``init``."""

    spec: str  # as given
    model_name: str  # the network they belong to
    state_dict: dict[str, torch.Tensor]
    preprocess: Preprocess
    classes: tuple[str, ...] | None  # what their classifier predicts, when known
    label: str  # e.g. resnet20:akamaster_cifar10 or the file name


def resolve_init(spec: str, model_name: str | None) -> InitWeights:
    """Read ``init`` (NAME[:TAG], a weights file or a run folder) with :func:`resnet.inference.load.load_network`.

    A bare NAME means that network's recommended weights. Anything ``resnet eval`` reads works, with the
    same safety (no code in a file is ever run) and the same one-line errors.
    """
    from ..weights import looks_like_path, split_name
    from ..inference.load import load_network

    source = spec
    if not looks_like_path(spec):
        name, tag = split_name(spec)
        source = f"{name}:{tag or 'default'}"
        if model_name is not None and model_name != name:
            raise UsageError(f"`init` {spec} holds weights for {name}, but `model` is {model_name}; drop `model` or "
                             f"pick weights of {model_name} (`resnet.weights.entries_for('{model_name}')` lists them)")
    elif not Path(spec).exists():
        raise UsageError(f"`init` {spec}: no such file or folder, and not a NAME[:TAG] (`resnet.weights.all_entries()` lists them)")
    loaded = load_network(source, model_name)
    state = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    classes = tuple(loaded.classes) if loaded.classes else None
    label = loaded.metadata.get("weights") or loaded.name
    return InitWeights(spec, loaded.model_name, state, loaded.preprocess, classes, str(label))


def resolve_init_ranked(spec: str, model_name: str | None, dist: Any) -> InitWeights:
    """:func:`resolve_init` on the main process first (it may download), then on the other ranks from the cache."""
    init = resolve_init(spec, model_name) if dist.is_main else None
    dist.barrier()
    return init if init is not None else resolve_init(spec, model_name)


def apply_init(model: nn.Module, init: InitWeights, classes: list[str]) -> str:
    """Load ``init`` into ``model`` (built for ``classes``); returns the note saying what happened to the head."""
    from ..models.interop import load_into

    same = init.classes is not None and list(init.classes) == list(classes)
    state = dict(init.state_dict)
    if not same:
        own = model.state_dict()
        state.update({k: v for k, v in own.items() if k.startswith(HEAD_PREFIX)})
    load_into(model, state, origin=f"`init` {init.label}")
    if same:
        return f"initialised from {init.label}, classifier kept (same {len(classes)} classes)"
    theirs = f"{len(init.classes)} classes ({_names(init.classes)})" if init.classes else "classes of unknown names"
    return (f"initialised from {init.label}; its classifier ({theirs}) was replaced by a new one for the folder's "
            f"{len(classes)} classes ({_names(classes)})")


def _names(classes: Any) -> str:
    names = list(classes)
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def freeze_prefixes(model: nn.Module, freeze: str) -> tuple[str, ...]:
    """Parameter-name prefixes covered by ``freeze`` (``stem``, ``layerN``, ``all``)."""
    parts = [p.strip() for p in freeze.split(",") if p.strip()]
    stages = sorted({n.split(".")[0] for n, _ in model.named_children() if n.startswith("layer")})
    prefixes: list[str] = []
    for part in parts:
        if part == "all":
            return tuple(f"{n}." for n, _ in model.named_children() if n != HEAD_PREFIX.rstrip("."))
        if part == "stem":
            prefixes += ["conv1.", "bn1."]
        elif part in stages:
            prefixes.append(f"{part}.")
            if part == stages[-1]:
                prefixes.append("final_bn.")
        else:
            raise UsageError(f"freeze={freeze}: this network has stem, {', '.join(stages)} (or all), not {part}")
    return tuple(prefixes)


def freeze(model: nn.Module, freeze_spec: str) -> int:
    """Stop gradients to the parts in ``freeze_spec`` and freeze their batch norm; returns the number of frozen tensors."""
    from torchvision.ops import FrozenBatchNorm2d

    prefixes = freeze_prefixes(model, freeze_spec)
    if not prefixes:
        return 0
    count = 0
    for name, param in model.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)
            count += 1
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.BatchNorm2d) and f"{name}.".startswith(prefixes):
            frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
            with torch.no_grad():
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, key).copy_(getattr(module, key))
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, frozen)
    return count


def notes(init_note: str | None, frozen: int, recipe: Recipe, optimizer: torch.optim.Optimizer) -> list[str]:
    """Lines the trainer prints about the starting weights, frozen parts and learning rates per group."""
    out = [init_note] if init_note else []
    if frozen:
        out.append(f"frozen: {recipe.freeze} ({frozen} tensors; their batch norm uses its running statistics)")
    if init_note or frozen:
        out.append(group_notes(optimizer))
    return out
