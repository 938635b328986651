"""The pretrained-aware entry points: ``resnet.create_model(name, pretrained=...)`` and ``resnet.backbone(name,
pretrained=...)``.

The models layer builds architectures (and loads a weights file it is given); this layer, which sits on top
of it, turns named weights (``True``, a tag, ``NAME:TAG``) into checked files in the cache first.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import CheckpointError, UsageError
from ..utils.download import DownloadPolicy
from ..models.backbone import backbone as build_backbone
from ..models.interop import load_pretrained
from ..models.registry import create_model as build_model
from .hub import hub_model, is_hub_name
from .home import check_fetchable, split_name
from .registry import find
from .store import ensure, load_entry

if TYPE_CHECKING:
    from torch import nn

    from ..models.network import ResNet

FILE_SUFFIXES = (".pth", ".pt", ".th", ".safetensors", ".bin")


def looks_like_path(value: str) -> bool:
    """A weights argument that names a file or folder rather than a tag."""
    return os.path.exists(value) or os.sep in value or value.endswith(FILE_SUFFIXES)


def create_model(
    name: str, *, pretrained: bool | str | os.PathLike[str] = False, features_only: bool = False,
    out_indices: Sequence[int] | None = None, **overrides: Any,
) -> ResNet:
    """Build the network ``name`` with random (He) weights, or with ``pretrained`` ones.

    ``overrides`` are fields of :class:`~resnet.models.specs.ModelSpec`, e.g. ``num_classes=100``,
    ``shortcut="C"``, ``version="v1"``, ``output_stride=16``, ``zero_init_residual=True``.
    ``pretrained``: ``True`` (the recommended weights of torchvision, timm or akamaster, in that
    order), a tag (``"tv_in1k_v2"``, ``"timm:a1_in1k"``; ``resnet weights list`` shows them) or a
    weights file. Named weights are downloaded once into the cache and checked (:mod:`resnet.weights`);
    ``model.preprocess`` then says what input they expect. With another ``num_classes`` the
    classifier keeps its random initialisation (for fine-tuning).

    ``name`` may be a Hugging Face Hub folder, ``"hf-hub:owner/name"`` (published with ``resnet weights publish``,
    or a timm ResNet pushed with ``push_to_hf_hub``): its ``config.json`` gives the network, and with
    ``pretrained=True`` its ``model.safetensors`` the weights, through ``huggingface_hub``'s cache (offline with
    ``HF_HUB_OFFLINE=1``).
    """
    if is_hub_name(name):
        if not isinstance(pretrained, bool):
            raise UsageError(f"{name} names its own weights: pass pretrained=True (or False for its architecture only)")
        if features_only or out_indices is not None:
            raise UsageError(f"features_only is not offered for {name}; build it, then use resnet.backbone on a saved file")
        return hub_model(name, pretrained, **overrides)[0]
    if not pretrained:
        return build_model(name, features_only=features_only, out_indices=out_indices, **overrides)
    return pretrained_model(name, pretrained, features_only=features_only, out_indices=out_indices, **overrides)


def pretrained_model(name: str, pretrained: bool | str | os.PathLike[str], *, features_only: bool = False,
                     out_indices: Sequence[int] | None = None, **overrides: Any) -> ResNet:
    """``create_model(name, pretrained=...)``: named weights (``True`` / tag) or a weights file."""
    if isinstance(pretrained, (str, os.PathLike)) and looks_like_path(str(pretrained)):
        model = build_model(name, features_only=features_only, out_indices=out_indices, **overrides)
        load_pretrained(model, Path(pretrained), strict=not features_only)
        return model
    tag = pretrained if isinstance(pretrained, str) else None
    check_fetchable(name, tag)  # no network and nothing cached: said at once
    entry = find(name, tag or True)
    if entry.num_classes and "num_classes" not in overrides:
        overrides["num_classes"] = entry.num_classes
    model = build_model(name, features_only=features_only, out_indices=out_indices, **overrides)
    load_entry(model, entry)
    return model


def download(name: str, policy: DownloadPolicy = DownloadPolicy()) -> Path:
    """The checked local file of the named weights ``NAME[:TAG]`` (``resnet50:tv_in1k_v2``; no tag: the recommended
    ones), downloaded into the cache first when absent."""
    model, tag = split_name(name)
    check_fetchable(model, tag)  # no network and nothing cached: said at once
    return ensure(find(model, tag), policy)


def resolve_pretrained(pretrained: str | os.PathLike[str]) -> Path:
    """The weights file ``pretrained`` names: a path (our checkpoint or run folder, or a torchvision / timm
    classification file) or named weights ``NAME:TAG`` (``resnet50:tv_in1k_v2``, ``resnet50:default``),
    fetched once into the cache and checked."""
    path = Path(pretrained)
    if path.exists():
        return path
    text = str(pretrained)
    if ":" in text and os.sep not in text:
        model, tag = split_name(text)
        check_fetchable(model, tag)
        return ensure(find(model, tag or None))
    raise CheckpointError(f"pretrained={text!r} is not a file, run folder or NAME:TAG of named weights; pass the path "
                          "of a checkpoint (ours, torchvision's or timm's classification weights) or a name such as "
                          "resnet50:default")


@functools.wraps(build_backbone)
def backbone(name: str, pretrained: str | os.PathLike[str] | None = None, *args: Any, **kwargs: Any) -> nn.Module:
    """:func:`resnet.models.backbone.backbone` (same arguments), its ``pretrained`` weights given as a path or
    as named weights ``NAME:TAG`` (see :func:`resolve_pretrained`)."""
    path = None if pretrained is None else resolve_pretrained(pretrained)
    return build_backbone(name, path, *args, **kwargs)
