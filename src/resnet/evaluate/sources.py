"""Turning a SOURCE (checkpoint file, run folder or model name) into a :class:`~resnet.inference.network.Network`.

- our safetensors checkpoints (or a run folder: ``best.safetensors``, else ``last``) carry the
  architecture, class names and preprocessing in their metadata, so they need no flags;
- imported checkpoints get the preprocessing of the published weights they are a copy of, else the
  convention of the project that trained them (:mod:`resnet.inference.load`). The network is named by ``model_name`` or read off the file name
  (``resnet56-4bfd9763.th`` → ``resnet56``); the class count is read off the classifier weights;
- ``NAME:TAG`` (``resnet50:tv_in1k_v2``, ``resnet56:default``) gives named pretrained weights
  (:mod:`resnet.weights`, downloaded once and checked) with the preprocessing they were published with;
- a registered model name alone names no weights: :func:`weights_for_name` refuses it, listing the named
  weights it has (a random network would answer confidently and wrongly), unless ``random_weights=True``
  asks for an untrained network on purpose (``resnet bench``, which only times).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, UsageError
from ..data.defaults import default_preprocess
from ..inference.load import build_network, is_model_name, load_network
from ..inference.network import Network
from ..weights.hub import is_hub_name
from .names import IMPORT_SOURCES


def resolve_source(
    source: str, *, model_name: str | None = None, checkpoint_source: str = "auto", num_classes: int | None = None,
    random_weights: bool = False, allow_untrained: bool = False,
) -> Network:
    """Build the :class:`~resnet.inference.network.Network` described by ``source``; errors are one-line :class:`~resnet.errors.ResNetError`.

    A model name resolves through :func:`weights_for_name`; ``random_weights=True`` gives it untrained
    weights instead (for timing only: its answers mean nothing). A file or run folder whose weights were never
    trained is refused (:func:`~resnet.inference.load.refuse_untrained`) unless ``allow_untrained`` (or
    ``random_weights``, which asks for timing only).
    """
    if checkpoint_source not in IMPORT_SOURCES:
        raise UsageError(f"unknown checkpoint origin {checkpoint_source!r}; choose one of {', '.join(IMPORT_SOURCES)}")
    if Path(source).exists() or is_hub_name(source) or (":" in source and is_model_name(source.split(":", 1)[0])):
        return load_network(source, model_name, checkpoint_source, allow_untrained=allow_untrained or random_weights)
    if is_model_name(source):
        if random_weights:
            return _random(source, num_classes)
        return weights_for_name(source)
    from ..models.specs import resolve_spec

    try:
        resolve_spec(source)
    except ValueError as err:  # a CIFAR-style name with an impossible depth: say which depths exist
        raise UsageError(f"{source!r} is no checkpoint file or run folder, and as a model name: {err}") from None
    raise UsageError(f"{source!r} is neither a checkpoint file, a run folder nor a model name; check the path (`resnet.list_models()` lists the model names)")


def weights_for_name(name: str) -> Network:
    """A bare model NAME is refused with the reason, naming the weights it could mean: a download
    should never start, nor an untrained network answer, because a tag was left out."""
    from ..weights import entries_for

    entries = entries_for(name)
    if entries:
        default = next((e for e in entries if e.default), entries[0])
        others = [e.name for e in entries if e is not default][:3]
        raise CheckpointError(
            f"{name} is a model name, not weights; name the weights: {default.name} (recommended)"
            f"{', ' + ', '.join(others) if others else ''} or {name}:default (`resnet.weights.entries_for('{name}')` lists all), "
            "or pass a checkpoint file or run folder")
    raise CheckpointError(
        f"{name} is a model name, and no trained weights for it are published; an untrained network would "
        f"give confident, meaningless answers. Pass a checkpoint file or run folder instead "
        f"(train one: `resnet.train.train(model='{name}')`)"
    )


def _random(name: str, num_classes: int | None) -> Network:
    model = build_network(name, **({"num_classes": num_classes} if num_classes else {}))
    model.eval()
    return Network(name, name, "random", model, default_preprocess(model.spec))

