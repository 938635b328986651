"""``create_model`` / ``list_models``: the public way to build any network by name."""

from __future__ import annotations

import difflib
import fnmatch
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import UsageError

if TYPE_CHECKING:
    from .network import ResNet
from .specs import MODEL_SPECS, ModelSpec, resolve_spec, with_overrides


class UnknownModelError(UsageError, ValueError):
    """Raised for a model name that is not registered (the message lists the closest names)."""


def get_spec(name: str, **overrides: Any) -> ModelSpec:
    """The spec for ``name`` with ``overrides`` applied and validated."""
    spec = resolve_spec(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(MODEL_SPECS), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (`resnet.list_models()` lists all; CIFAR nets accept any resnet{{6n+2}} / plain{{6n+2}})"
        )
    return with_overrides(spec, **overrides) if overrides else spec


def create_model(
    name: str, *, pretrained: bool | str = False, features_only: bool = False, out_indices: Sequence[int] | None = None,
    **overrides: Any,
) -> ResNet:
    """Build the network ``name`` with random (He) weights: the architecture only.

    ``overrides`` are fields of :class:`~resnet.models.specs.ModelSpec`, e.g. ``num_classes=100``,
    ``shortcut="C"``, ``version="v1"``, ``output_stride=16``, ``zero_init_residual=True``.
    Pretrained weights come from :func:`resnet.create_model` (:func:`resnet.weights.create_model`), which
    sits on top of this layer; ``pretrained`` here is refused with a message saying so.
    """
    if pretrained:
        raise UsageError(f"resnet.models.create_model builds architectures only; load `pretrained` {pretrained!r} "
                         "with resnet.create_model (resnet.weights.create_model)")
    from .network import ResNet  # PyTorch is imported here, not by listing or resolving names

    return ResNet(get_spec(name, **overrides), features_only=features_only, out_indices=out_indices, model_name=name)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, optionally filtered by a shell-style ``pattern`` (``"resnet*"``, ``"*wide*"``)."""
    names = sorted(MODEL_SPECS, key=_natural_key)
    if pattern:
        if not any(c in pattern for c in "*?["):
            pattern = f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def matching_models(pattern: str | None) -> list[str]:
    """Registered names matching ``pattern`` (as :func:`list_models`); none is a usage error naming the closest."""
    names = list_models(pattern)
    if names or not pattern:
        return names
    close = difflib.get_close_matches(pattern.strip("*?"), list_models(None), n=5, cutoff=0.4)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise UsageError(f"no network matches {pattern!r}{hint} (`resnet.list_models()` lists all)")


def _natural_key(name: str) -> tuple[Any, ...]:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
