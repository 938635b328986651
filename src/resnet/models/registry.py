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
            f"unknown model {name!r}{hint} (`resnet list` shows all; CIFAR nets accept any resnet{{6n+2}} / plain{{6n+2}})"
        )
    return with_overrides(spec, **overrides) if overrides else spec


def create_model(
    name: str, *, pretrained: bool | str = False, features_only: bool = False, out_indices: Sequence[int] | None = None,
    **overrides: Any,
) -> ResNet:
    """Build the network ``name`` with random (He) weights, or with ``pretrained`` ones.

    ``overrides`` are fields of :class:`~resnet.models.specs.ModelSpec`, e.g. ``num_classes=100``,
    ``shortcut="C"``, ``version="v1"``, ``output_stride=16``, ``zero_init_residual=True``.
    ``pretrained``: ``True`` (the recommended weights of torchvision, timm or akamaster, in that
    order), a tag (``"tv_in1k_v2"``, ``"timm:a1_in1k"``; ``resnet weights list`` shows them) or a
    weights file. Named weights are downloaded once into the cache and checked (:mod:`resnet.weights`);
    ``model.preprocess`` then says what input they expect. With another ``num_classes`` the
    classifier keeps its random initialisation (for fine-tuning).
    """
    if pretrained:
        from ..weights import pretrained_model  # the weights layer sits on top of this one

        return pretrained_model(name, pretrained, features_only=features_only, out_indices=out_indices, **overrides)
    from .network import ResNet  # PyTorch is imported here, not by listing or resolving names

    model = ResNet(get_spec(name, **overrides), features_only=features_only, out_indices=out_indices)
    model.model_name = name  # type: ignore[assignment]
    return model


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, optionally filtered by a shell-style ``pattern`` (``"resnet*"``, ``"*wide*"``)."""
    names = sorted(MODEL_SPECS, key=_natural_key)
    if pattern:
        if not any(c in pattern for c in "*?["):
            pattern = f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def _natural_key(name: str) -> tuple[Any, ...]:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
