"""Turning weights into a network with its preprocessing: a weights file, a run folder or ``NAME:TAG``.

- our safetensors checkpoints (or a run folder: ``best.safetensors``, else ``last``) carry the
  architecture, class names and preprocessing in their metadata;
- imported checkpoints get the preprocessing of the published weights they are a copy of (matched by the
  sha256 in their file name or of their content: :mod:`resnet.weights.match`), else the convention of the
  project that trained them: akamaster → ImageNet mean/std at 32x32 with CIFAR-10 class names; torchvision /
  timm → ImageNet mean/std at the stem's default sizes (:mod:`resnet.models.data_config`), ImageNet class
  names. The network is named by ``model_name`` or read off the file name (``resnet56-4bfd9763.th`` →
  ``resnet56``); the class count is read off the classifier weights;
- ``NAME:TAG`` (``resnet50:tv_in1k_v2``, ``resnet56:default``) gives named pretrained weights
  (downloaded once and checked) with the preprocessing they were published with.

:func:`load_network` returns a :class:`~resnet.inference.network.Network`; it is what both ``resnet eval``
(:mod:`resnet.evaluate.sources`) and fine-tuning (``init``, :mod:`resnet.train.finetune`) read weights with:
the same safety (no code in a file is ever run) and the same one-line errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.defaults import default_preprocess
from ..data.preprocess import Preprocess
from ..errors import CheckpointError, UsageError, WrongFileKind
from ..reference import CIFAR10_CLASSES as _CIFAR10_CLASSES
from ..utils.runlock import check_run_folder
from ..weights.hub import HUB_PREFIX, hub_model, is_hub_name
from ..weights.match import entry_for_file
from ..weights.home import check_fetchable, split_name
from ..weights.registry import AKAMASTER_PREPROCESS, find
from ..weights.store import load_entry
from .network import Network


def load_network(source: str, model_name: str | None = None, checkpoint_source: str = "auto", *,
                 allow_untrained: bool = False) -> Network:
    """``source``: an existing weights file or run folder (read as ``checkpoint_source``: auto, resnet,
    akamaster, torchvision, timm), else ``NAME:TAG`` of named weights. Weights that were never trained are
    refused (:func:`refuse_untrained`) unless ``allow_untrained``."""
    path = Path(source)
    if path.exists():
        network = network_from_path(path, source, model_name, checkpoint_source)
        refuse_untrained(network.model, weights_file(path), allow_untrained)
        return network
    if is_hub_name(source):
        return hub_network(source)
    return named_network(source)


#: ``1`` lets untrained weights through in this process (a test suite's random checkpoints); the option is
#: ``allow_untrained``.
ALLOW_UNTRAINED_ENV = "RESNET_ALLOW_UNTRAINED"


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def untrained_reason(model: nn.Module) -> str | None:
    """Why ``model``'s weights look like a fresh initialisation, or ``None``. Two checks on its batch-norm layers
    (a network without any cannot be told): every running statistic still at its initial value (mean 0,
    variance 1: no training batch ever went through), or every scale and shift still at its initial value
    (1 or 0, and 0: no optimiser step ever changed them)."""
    norms = [m for m in model.modules() if isinstance(m, _BATCH_NORMS)]
    tracked = [m for m in norms if m.running_mean is not None and m.running_var is not None]
    if tracked and all(bool((m.running_mean == 0).all() and (m.running_var == 1).all()) for m in tracked):
        return "every batch-norm layer still has its initial running statistics (mean 0, variance 1)"
    affine = [m for m in norms if m.weight is not None and m.bias is not None]
    if affine and all(bool(((m.weight == 1) | (m.weight == 0)).all() and (m.bias == 0).all()) for m in affine):
        return "every batch-norm scale and shift is still at its initial value, as a fresh initialisation leaves them"
    return None


def refuse_untrained(model: nn.Module, weights: Path, allow: bool = False) -> None:
    """:class:`CheckpointError` naming ``weights`` and the check when they were never trained: such a network
    answers with confident, meaningless probabilities (a saved ``torchvision.models.resnet50()`` said
    "rocking chair 80.6 %")."""
    import os

    if allow or os.environ.get(ALLOW_UNTRAINED_ENV) == "1":
        return
    reason = untrained_reason(model)
    if reason:
        raise CheckpointError(f"{weights} holds untrained weights: {reason}; its answers would mean nothing. Pass "
                              "trained weights, or set `allow_untrained` to use them anyway")


CIFAR10_CLASSES = list(_CIFAR10_CLASSES)  # class names travel as lists (metadata, reports)


def recorded_preprocess(meta: dict[str, Any], spec: Any, origin: str) -> Preprocess:
    """The preprocessing a checkpoint's metadata records (:meth:`Preprocess.from_dict` also reads the partial
    dicts of older runs); a checkpoint that records none gets the convention of its data set or stem."""
    if meta.get("preprocess"):
        return Preprocess.from_dict(meta["preprocess"], origin)
    return default_preprocess(spec, meta.get("dataset"))


def build_network(name: str, **overrides: Any) -> nn.Module:
    """``create_model(name, **overrides)``, a bad name or value as a one-line :class:`UsageError`."""
    from ..models import create_model

    try:
        return create_model(name, **overrides)
    except UsageError:
        raise
    except ValueError as err:
        raise UsageError(str(err)) from None


def hub_network(source: str) -> Network:
    """``hf-hub:owner/name``: a Hub folder (ours or timm's ResNet) through ``huggingface_hub``'s cache."""
    model, meta = hub_model(source)
    model.eval()
    classes = checked_classes(meta, model, Path(meta["file"])) if meta.get("classes") else None
    if classes is None and meta["kind"] == "timm" and model.num_classes == 1000:
        classes = imagenet_classes()
    pre = recorded_preprocess(meta, model.spec, source)
    return Network(source[len(HUB_PREFIX):], source, meta["kind"], model, pre, classes, meta)


def named_network(source: str) -> Network:
    """``NAME:TAG`` (``resnet50:tv_in1k_v2``, ``resnet56:default``): named weights with their own preprocessing."""
    model_name, tag = split_name(source)
    check_fetchable(model_name, tag)  # no network and nothing cached: said before the metadata is read
    entry = find(model_name, tag or None)
    model = build_network(entry.model, **({"num_classes": entry.num_classes} if entry.num_classes else {}))
    loaded = load_entry(model, entry)
    model.eval()
    return Network(entry.name, source, entry.publisher, model, entry.preprocess, entry.classes(),
                         {"weights": entry.name, "file": str(loaded.path)})


def weights_file(path: Path) -> Path:
    """``path`` itself, or the weights a run folder holds (``best``, else ``last``, else ``model.safetensors``)."""
    if not path.is_dir():
        return path
    for candidate in ("best.safetensors", "last.safetensors", "model.safetensors"):
        if (path / candidate).is_file():
            return path / candidate
    from ..data.scan import find_images
    from ..utils.filekind import IMAGE

    if find_images([path]):
        raise WrongFileKind(f"{path} is a folder of images, not a run folder (it holds no best.safetensors or "
                            "last.safetensors)", str(path), IMAGE)
    raise CheckpointError(f"{path} is a folder without best.safetensors or last.safetensors; pass a run folder or a weights file")


def network_from_path(path: Path, source: str, model_name: str | None, checkpoint_source: str = "auto") -> Network:
    """A weights file or run folder (our checkpoints carry their network; others are named by ``model_name``
    or their file name, and get the conventions of the project that trained them)."""
    from ..models.interop import convert_state_dict, detect_source, load_into, model_from_checkpoint, read_state_dict

    weights = weights_file(path)
    state_dict, meta = read_state_dict(weights, model_name or infer_model_name(weights))
    if path.is_dir():  # a run folder's weights must be the ones its summary.json describes
        check_run_folder(path, weights, meta.get("step"))
    kind = detect_source(state_dict, meta) if checkpoint_source == "auto" else checkpoint_source
    label = path.name if path.is_dir() else weights.stem
    if kind == "resnet" and "spec" in meta and model_name is None:
        model, meta = model_from_checkpoint(weights)
        pre = recorded_preprocess(meta, model.spec, str(weights))
        classes = checked_classes(meta, model, weights)
        model.eval()
        return Network(label, source, kind, model, pre, classes, meta)

    name = model_name or infer_model_name(weights)
    if name is None:
        raise UsageError(f"cannot tell which network {weights} holds; name it with `model` (e.g. `model` resnet50)")
    converted = convert_state_dict(state_dict, "akamaster" if kind == "akamaster" else "torchvision")
    overrides: dict[str, Any] = {}
    fc = converted.get("fc.weight")
    if isinstance(fc, torch.Tensor) and fc.ndim == 2:
        overrides["num_classes"] = int(fc.shape[0])
    model = build_network(name, **overrides)
    load_into(model, converted, origin=str(weights))
    model.eval()
    if kind == "resnet":
        pre = recorded_preprocess(meta, model.spec, str(weights))
        return Network(label, source, kind, model, pre, checked_classes(meta, model, weights), meta)
    pre, classes, meta = published_convention(weights, name, kind, model, meta)
    return Network(label, source, kind, model, pre, classes, meta)


def published_convention(weights: Path, name: str, kind: str, model: nn.Module,
                         meta: dict[str, Any]) -> tuple[Preprocess, list[str] | None, dict[str, Any]]:
    """Preprocessing, class names and metadata of another project's file: those of the published weights it is a copy
    of (matched by the sha256 in its name or of its content), else its publisher's convention at the stem's sizes."""
    entry = entry_for_file(weights, name)
    if entry is not None and entry.num_classes in (0, model.num_classes):
        return entry.preprocess, entry.classes(), {**meta, "weights": entry.name}
    if kind == "akamaster":
        return AKAMASTER_PREPROCESS, CIFAR10_CLASSES if model.num_classes == 10 else None, meta
    # torchvision / timm: ImageNet's statistics at the stem's default sizes
    return default_preprocess(model.spec, "imagenet"), imagenet_classes() if model.num_classes == 1000 else None, meta


def checked_classes(meta: dict[str, Any], model: nn.Module, weights: Path) -> list[str] | None:
    """The class names of the metadata, which must name every output of the classifier."""
    names = meta.get("classes")
    if not names:
        return None
    classes = [str(c) for c in names]
    if len(classes) != int(getattr(model, "num_classes", len(classes))):
        raise CheckpointError(
            f"{weights} names {len(classes)} classes in its metadata but its classifier has {model.num_classes} outputs; "
            "the file was altered, use another copy"
        )
    return classes


def infer_model_name(path: Path) -> str | None:
    """``resnet56-4bfd9763.th`` → ``resnet56``; ``wide_resnet50_2-95faca4d.pth`` → ``wide_resnet50_2``."""
    stem = path.name.split(".")[0]
    candidates = [stem, re.split(r"[-.]", stem)[0]]
    m = re.match(r"^([a-z_]+\d+(?:_\d+x\d+d|_\d+)?)", stem)
    if m:
        candidates.append(m.group(1))
    for c in candidates:
        if is_model_name(c):
            return c
    return None


def is_model_name(name: str) -> bool:
    """Whether ``name`` names a network (``resnet56``, ``wide_resnet50_2``), never raising."""
    from ..models.specs import resolve_spec

    try:
        return resolve_spec(name) is not None
    except ValueError:  # e.g. a CIFAR-style name whose depth is not 6n+2
        return False


def imagenet_classes() -> list[str] | None:
    """The 1,000 ImageNet class names, as torchvision ships them."""
    try:  # torchvision ships the names with its weight descriptions; nothing is downloaded
        from torchvision.models import ResNet50_Weights

        return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    except (ImportError, AttributeError, KeyError):
        return None


