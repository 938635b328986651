"""Turning a SOURCE (checkpoint file, run folder or model name) into a network with its preprocessing.

- our safetensors checkpoints (or a run folder: ``best.safetensors``, else ``last``) carry the
  architecture, class names and preprocessing in their metadata, so they need no flags;
- imported checkpoints get the convention of the project that trained them: akamaster → ImageNet
  mean/std at 32x32 with CIFAR-10 class names; torchvision / timm → ImageNet mean/std, resize 256,
  crop 224, ImageNet class names. The network is named by ``model_name`` or read off the file name
  (``resnet56-4bfd9763.th`` → ``resnet56``); the class count is read off the classifier weights;
- ``NAME:TAG`` (``resnet50:tv_in1k_v2``, ``resnet56:default``) gives named pretrained weights
  (:mod:`resnet.weights`, downloaded once and checked) with the preprocessing they were published with;
- a registered model name alone names no weights: :func:`weights_for_name` refuses it, listing the named
  weights it has (a random network would answer confidently and wrongly), unless ``random_weights=True``
  asks for an untrained network on purpose (``resnet bench``, which only times).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data.preprocess import Preprocess
from ..data.registry import dataset_stats
from ..errors import CheckpointError, UsageError
from ..reference import CIFAR10_CLASSES as _CIFAR10_CLASSES
from ..reference import IMAGENET_MEAN, IMAGENET_STD
from .names import IMPORT_SOURCES, OPTIMIZE_MODES
from .protocols import Network

CIFAR10_CLASSES = list(_CIFAR10_CLASSES)  # class names travel as lists (metadata, reports)


@dataclass
class Member:
    """One network ready for evaluation: the model, how to call it and what it expects."""

    name: str  # short label for tables (file stem or model name)
    source: str  # the SOURCE as given
    kind: str  # resnet / akamaster / torchvision / timm / random
    model: nn.Module
    preprocess: Preprocess
    classes: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    forward: Callable[[Tensor], Tensor] | None = None  # an optimised callable replacing model.forward
    optimized: nn.Module | None = None  # what resnet.deploy.optimize returned, if used
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where the model runs; see place()

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes"))

    @property
    def model_name(self) -> str:
        return str(getattr(self.model, "model_name", type(self.model).__name__))

    def network(self) -> Network:
        """How protocols call this member (CPU tensors in and out, wherever the model runs); the optimised
        model's feature map is used when it has one."""
        if self.optimized is None:
            net = Network.of(self.model)
        else:
            dense = Network.of(self.optimized).dense_logits if hasattr(self.optimized, "forward_features") else None
            net = Network(self.forward or self.optimized, dense)
        if self.device.type == "cpu":
            return net
        return Network(_on_device(net.logits, self.device), net.dense_logits and _on_device(net.dense_logits, self.device))

    def place(self, device: str | None) -> "Member":
        """Run the model on ``device`` (cpu, cuda, cuda:N; ``None`` / auto: a GPU when there is one)."""
        from ..utils.device import resolve_device

        self.device = resolve_device(device)
        if self.optimized is not None and self.device.type != "cpu":
            raise UsageError("the optimised modes run on the CPU; use device cpu, or no optimisation on a GPU")
        self.model.to(self.device)
        return self

    def class_names(self) -> list[str]:
        return list(self.classes) if self.classes else [f"class_{i}" for i in range(self.num_classes)]


def _on_device(fn: Callable[[Tensor], Tensor], device: torch.device) -> Callable[[Tensor], Tensor]:
    return lambda x: fn(x.to(device, non_blocking=True)).float().cpu()


def default_preprocess(spec: Any, dataset: str | None = None) -> Preprocess:
    """Convention for a network that carries none: by data set when it has published statistics, else by its stem
    (CIFAR-10's for CIFAR stems, ImageNet's for the others)."""
    small = getattr(spec, "stem", "imagenet") == "cifar"
    mean, std = dataset_stats(dataset) or dataset_stats("cifar10" if small else "imagenet") or (IMAGENET_MEAN, IMAGENET_STD)
    channels = getattr(spec, "in_chans", 3)
    if channels != len(mean):
        mean, std = (0.5,) * channels, (0.5,) * channels
    if small:
        return Preprocess(tuple(mean), tuple(std), 32)
    return Preprocess(tuple(mean), tuple(std), 224, resize=256, crop=224)


def recorded_preprocess(meta: dict[str, Any], spec: Any, origin: str) -> Preprocess:
    """The preprocessing a checkpoint's metadata records (:meth:`Preprocess.from_dict` also reads the partial
    dicts of older runs); a checkpoint that records none gets the convention of its data set or stem."""
    if meta.get("preprocess"):
        return Preprocess.from_dict(meta["preprocess"], origin)
    return default_preprocess(spec, meta.get("dataset"))


def resolve_source(
    source: str, *, model_name: str | None = None, checkpoint_source: str = "auto", num_classes: int | None = None,
    random_weights: bool = False,
) -> Member:
    """Build the :class:`Member` described by ``source``; errors are one-line :class:`~resnet.errors.ResNetError`.

    A model name resolves through :func:`weights_for_name`; ``random_weights=True`` gives it untrained
    weights instead (for timing only: its answers mean nothing).
    """
    if checkpoint_source not in IMPORT_SOURCES:
        raise UsageError(f"unknown checkpoint origin {checkpoint_source!r}; choose one of {', '.join(IMPORT_SOURCES)}")
    path = Path(source)
    if path.exists():
        return _from_path(path, source, model_name, checkpoint_source)
    if ":" in source and is_model_name(source.split(":", 1)[0]):
        return _named(source)
    if is_model_name(source):
        if random_weights:
            return _random(source, num_classes)
        return weights_for_name(source)
    from ..models.specs import resolve_spec

    try:
        resolve_spec(source)
    except ValueError as err:  # a CIFAR-style name with an impossible depth: say which depths exist
        raise UsageError(f"{source!r} is no checkpoint file or run folder, and as a model name: {err}") from None
    raise UsageError(f"{source!r} is neither a checkpoint file, a run folder nor a model name; check the path (`resnet list` shows model names)")


def weights_for_name(name: str) -> Member:
    """A bare model NAME is refused with the reason, naming the weights it could mean: a download
    should never start, nor an untrained network answer, because a tag was left out."""
    from ..weights import entries_for

    entries = entries_for(name)
    if entries:
        default = next((e for e in entries if e.default), entries[0])
        others = [e.name for e in entries if e is not default][:3]
        raise CheckpointError(
            f"{name} is a model name, not weights; name the weights: {default.name} (recommended)"
            f"{', ' + ', '.join(others) if others else ''} or {name}:default (`resnet weights list {name}` shows all), "
            "or pass a checkpoint file or run folder")
    raise CheckpointError(
        f"{name} is a model name, and no trained weights for it are published; an untrained network would "
        f"give confident, meaningless answers. Pass a checkpoint file or run folder instead "
        f"(train one with `resnet train {name}`)"
    )


def _build(name: str, **overrides: Any) -> nn.Module:
    from ..models import create_model

    try:
        return create_model(name, **overrides)
    except UsageError:
        raise
    except ValueError as err:
        raise UsageError(str(err)) from None


def _random(name: str, num_classes: int | None) -> Member:
    model = _build(name, **({"num_classes": num_classes} if num_classes else {}))
    model.eval()
    return Member(name, name, "random", model, default_preprocess(model.spec))


def _named(source: str) -> Member:
    """``NAME:TAG`` (``resnet50:tv_in1k_v2``, ``resnet56:default``): named weights with their own preprocessing."""
    from ..weights import find, load_entry, split_name

    model_name, tag = split_name(source)
    entry = find(model_name, tag or None)
    model = _build(entry.model, **({"num_classes": entry.num_classes} if entry.num_classes else {}))
    loaded = load_entry(model, entry)
    model.eval()
    return Member(entry.name, source, entry.source, model, entry.preprocess, entry.classes(),
                  {"weights": entry.name, "file": str(loaded.path)})


def _weights_file(path: Path) -> Path:
    if not path.is_dir():
        return path
    for candidate in ("best.safetensors", "last.safetensors", "model.safetensors"):
        if (path / candidate).is_file():
            return path / candidate
    raise CheckpointError(f"{path} is a folder without best.safetensors or last.safetensors; pass a run folder or a weights file")


def _from_path(path: Path, source: str, model_name: str | None, checkpoint_source: str) -> Member:
    from ..models.interop import convert_state_dict, detect_source, load_into, model_from_checkpoint, read_state_dict

    weights = _weights_file(path)
    state_dict, meta = read_state_dict(weights)
    kind = detect_source(state_dict, meta) if checkpoint_source == "auto" else checkpoint_source
    label = path.name if path.is_dir() else weights.stem
    if kind == "resnet" and "spec" in meta and model_name is None:
        model, meta = model_from_checkpoint(weights)
        pre = recorded_preprocess(meta, model.spec, str(weights))
        classes = _checked_classes(meta, model, weights)
        model.eval()
        return Member(label, source, kind, model, pre, classes, meta)

    name = model_name or _infer_model_name(weights)
    if name is None:
        raise UsageError(f"cannot tell which network {weights} holds; name it with `model` (e.g. `model` resnet50)")
    converted = convert_state_dict(state_dict, "akamaster" if kind == "akamaster" else "torchvision")
    overrides: dict[str, Any] = {}
    fc = converted.get("fc.weight")
    if isinstance(fc, torch.Tensor) and fc.ndim == 2:
        overrides["num_classes"] = int(fc.shape[0])
    model = _build(name, **overrides)
    load_into(model, converted, origin=str(weights))
    model.eval()
    if kind == "akamaster":
        pre = Preprocess(IMAGENET_MEAN, IMAGENET_STD, 32)
        classes: list[str] | None = CIFAR10_CLASSES if model.num_classes == 10 else None
    elif kind == "resnet":
        pre = recorded_preprocess(meta, model.spec, str(weights))
        classes = _checked_classes(meta, model, weights)
    else:
        pre = Preprocess(IMAGENET_MEAN, IMAGENET_STD, 224, resize=256, crop=224)
        classes = _imagenet_classes() if model.num_classes == 1000 else None
    return Member(label, source, kind, model, pre, classes, meta)


def _checked_classes(meta: dict[str, Any], model: nn.Module, weights: Path) -> list[str] | None:
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


def _infer_model_name(path: Path) -> str | None:
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
    """Whether ``name`` names a network (registered, or a CIFAR ``resnet``/``plain`` of depth 6n+2)."""
    from ..models.specs import resolve_spec

    try:
        return resolve_spec(name) is not None
    except ValueError:  # e.g. a CIFAR-style name whose depth is not 6n+2
        return False


def _imagenet_classes() -> list[str] | None:
    try:  # torchvision ships the names with its weight descriptions; nothing is downloaded
        from torchvision.models import ResNet50_Weights

        return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    except (ImportError, AttributeError, KeyError):
        return None


def apply_optimize(member: Member, mode: str, calibration: Tensor | None = None) -> None:
    """Replace ``member.forward`` by ``resnet.deploy.optimize(model, mode, calibration=...)``."""
    if mode not in OPTIMIZE_MODES:
        raise UsageError(f"unknown `optimize` {mode!r}; choose one of {', '.join(OPTIMIZE_MODES)}")
    if mode == "none":
        return
    if member.device.type != "cpu":
        raise UsageError(f"`optimize` {mode} runs on the CPU; use `device` cpu with it")
    from ..deploy import optimize

    optimized = optimize(member.model, mode, calibration=calibration)
    member.optimized = optimized
    member.forward = lambda x: optimized(x).float()
    member.metadata = {**member.metadata, "optimize": mode}
