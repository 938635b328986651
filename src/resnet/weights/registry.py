"""Named pretrained weights, collected at run time from the libraries that own the facts.

- torchvision: ``get_model_weights(name)`` gives the URL (its file name ends in the sha256 prefix), the
  published ImageNet accuracy, the file size and ``transforms()`` (resize / crop / interpolation);
- timm: ``list_pretrained`` / ``get_pretrained_cfg`` give the Hugging Face repository, input size,
  ``crop_pct``, mean / std, interpolation and licence (timm publishes no accuracy in its configs);
- akamaster's CIFAR-10 checkpoints: the only hand-kept facts, in :mod:`resnet.reference`.

Every name :func:`resnet.create_model` knows gets every entry whose architecture it builds.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import math
import re
from dataclasses import dataclass

from ..data.preprocess import Preprocess
from ..errors import UsageError
from .home import TAG_PREFIXES
from ..reference import AKAMASTER_FILES, AKAMASTER_REPORTED_ERR, AKAMASTER_URL, CIFAR10_CLASSES, IMAGENET_MEAN, IMAGENET_STD

PUBLISHERS = ("torchvision", "timm", "akamaster")  # who publishes weights (docs/dev/architecture.md, Vocabulary)
TIMM_PREFIX = TAG_PREFIXES["timm"]
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


@dataclass(frozen=True)
class WeightEntry:
    """One downloadable set of weights for one of our networks."""

    model: str  # our create_model name
    tag: str  # tv_in1k_v2, timm:a1_in1k, akamaster_cifar10
    publisher: str  # who publishes them: torchvision / timm / akamaster
    url: str  # the file's home (for timm: the Hugging Face repository page)
    filename: str  # name of the file in the cache
    preprocess: Preprocess
    num_classes: int  # 0: a backbone without classifier
    dataset: str  # what it was trained on: imagenet-1k, cifar10, ...
    sha256_prefix: str | None = None  # from the file name (torchvision, akamaster)
    hf_hub_id: str | None = None  # timm: the repository on the Hugging Face hub
    top1: float | None = None  # published accuracy (%) on the dataset's validation / test set
    top5: float | None = None
    file_size_mb: float | None = None
    license: str | None = None
    default: bool = False  # the publisher's recommended weights for this network
    test_input_size: int | None = None  # timm: the larger size its accuracy is usually quoted at

    @property
    def name(self) -> str:
        return f"{self.model}:{self.tag}"

    def classes(self) -> list[str] | None:
        """Class names when the library that owns them ships them (nothing is downloaded)."""
        if self.dataset == "cifar10":
            return list(CIFAR10_CLASSES)
        if self.num_classes == 1000:
            try:
                from torchvision.models import ResNet50_Weights

                return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
            except (ImportError, AttributeError, KeyError):
                return None
        return None


def sha256_prefix_of(filename: str) -> str | None:
    """``resnet50-11ad3fa6.pth`` → ``11ad3fa6`` (torchvision's and akamaster's naming)."""
    match = _HASH_IN_NAME.search(filename)
    return match.group(1) if match else None


# -- torchvision ------------------------------------------------------------------------------------
def _torchvision_tag(enum_name: str) -> str:
    """``IMAGENET1K_V2`` → ``tv_in1k_v2``."""
    return TAG_PREFIXES["torchvision"] + enum_name.lower().replace("imagenet1k", "in1k")


def torchvision_entries(model: str) -> list[WeightEntry]:
    try:
        from torchvision.models import get_model_weights
    except ImportError:
        return []
    try:
        weights_enum = get_model_weights(model)
    except (ValueError, KeyError):
        return []
    default = weights_enum.DEFAULT if hasattr(weights_enum, "DEFAULT") else None
    out = []
    for w in weights_enum:
        t = w.transforms()
        metrics = next(iter(w.meta.get("_metrics", {}).values()), {})
        filename = w.url.rsplit("/", 1)[-1]
        pre = Preprocess(tuple(t.mean), tuple(t.std), int(t.crop_size[0]), resize=int(t.resize_size[0]),
                         crop=int(t.crop_size[0]), interpolation=t.interpolation.value)
        out.append(WeightEntry(
            model=model, tag=_torchvision_tag(w.name), publisher="torchvision", url=w.url, filename=filename,
            preprocess=pre, num_classes=len(w.meta.get("categories") or ()) or 1000, dataset="imagenet-1k",
            sha256_prefix=sha256_prefix_of(filename), top1=metrics.get("acc@1"), top5=metrics.get("acc@5"),
            file_size_mb=w.meta.get("_file_size"), license=w.meta.get("license"), default=w is default,
        ))
    return out


# -- timm -------------------------------------------------------------------------------------------
def timm_preprocess(cfg: dict) -> Preprocess:
    """timm's eval pipeline: resize the shorter side to ``floor(size / crop_pct)``, center-crop ``size``."""
    size = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    return Preprocess(tuple(cfg["mean"]), tuple(cfg["std"]), size, resize=max(size, math.floor(size / crop_pct)),
                      crop=size, interpolation=str(cfg.get("interpolation") or "bilinear"))


def timm_entries(model: str) -> list[WeightEntry]:
    try:
        import timm
        from timm.models import get_pretrained_cfg
    except ImportError:
        return []
    names = [n for n in _timm_pretrained() if n.split(".", 1)[0] == model]
    default_cfg = get_pretrained_cfg(model) if names else None
    out = []
    for full in names:
        cfg = get_pretrained_cfg(full).to_dict()
        if not cfg.get("hf_hub_id") and not cfg.get("url"):
            continue
        tag = full.split(".", 1)[1]
        test_size = cfg.get("test_input_size")
        url = cfg.get("url") or ""
        hf_hub_id = cfg.get("hf_hub_id") or None
        filename = "model.safetensors" if hf_hub_id else url.rsplit("/", 1)[-1]
        out.append(WeightEntry(
            model=model, tag=TIMM_PREFIX + tag, publisher="timm",
            url=f"https://huggingface.co/{hf_hub_id}" if hf_hub_id else url, filename=filename,
            preprocess=timm_preprocess(cfg), num_classes=int(cfg.get("num_classes") or 0),
            dataset=_timm_dataset(tag), sha256_prefix=None if hf_hub_id else sha256_prefix_of(filename),
            hf_hub_id=hf_hub_id, license=cfg.get("license"),
            default=default_cfg is not None and default_cfg.tag == tag,
            test_input_size=int(test_size[-1]) if test_size else None,
        ))
    return out


@functools.lru_cache(maxsize=1)
def _timm_pretrained() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_pretrained())


def _timm_dataset(tag: str) -> str:
    if tag.endswith("in1k"):
        return "imagenet-1k"
    if "in22k" in tag or "in21k" in tag:
        return "imagenet-22k"
    return tag


# -- akamaster --------------------------------------------------------------------------------------
# Their convention: ImageNet's mean and std on CIFAR-10's 32x32 images as they are.
AKAMASTER_PREPROCESS = Preprocess(IMAGENET_MEAN, IMAGENET_STD, 32)


def akamaster_entries(model: str) -> list[WeightEntry]:
    match = re.fullmatch(r"(?:cifar_)?resnet(\d+)", model)
    if match is None or int(match.group(1)) not in AKAMASTER_FILES or model != f"resnet{match.group(1)}":
        return []
    depth = int(match.group(1))
    filename = AKAMASTER_FILES[depth]
    return [WeightEntry(
        model=model, tag=TAG_PREFIXES["akamaster"] + "cifar10", publisher="akamaster", url=AKAMASTER_URL + filename, filename=filename,
        preprocess=AKAMASTER_PREPROCESS, num_classes=10, dataset="cifar10",
        sha256_prefix=sha256_prefix_of(filename), top1=round(100.0 - AKAMASTER_REPORTED_ERR[depth], 2),
        default=True,
    )]


# -- lookup -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def entries_for(model: str) -> tuple[WeightEntry, ...]:
    """Every entry for ``model``; the first default (torchvision, then timm, then akamaster) is recommended."""
    found = [*torchvision_entries(model), *timm_entries(model), *akamaster_entries(model)]
    first_default = next((e for e in found if e.default), None)
    # One recommendation per network: the first publisher's default wins.
    return tuple(e if e is first_default or not e.default else _not_default(e) for e in found)


def _not_default(entry: WeightEntry) -> WeightEntry:
    from dataclasses import replace

    return replace(entry, default=False)


def all_entries(pattern: str | None = None) -> list[WeightEntry]:
    """Entries of every registered network, filtered by a shell pattern on ``model:tag`` (substring without wildcards)."""
    from ..models import list_models

    out = [e for name in list_models() for e in entries_for(name)]
    if pattern:
        if not any(c in pattern for c in "*?["):
            pattern = f"*{pattern}*"
        out = [e for e in out if fnmatch.fnmatch(e.name, pattern) or fnmatch.fnmatch(e.model, pattern)]
    return out


class UnknownWeightsError(UsageError):
    """A NAME:TAG that names no weights (the message lists the closest)."""


def find(model: str, tag: str | bool | None = None) -> WeightEntry:
    """The entry for ``model`` and ``tag`` (``None`` / ``True`` / ``"default"``: the recommended one)."""
    from ..models import get_spec

    get_spec(model)  # unknown network: its own error with the closest names
    entries = entries_for(model)
    if not entries:
        raise UnknownWeightsError(f"no pretrained weights are published for {model}; `resnet.weights.all_entries()` lists "
                                  "the networks that have some (or pass a weights file)")
    if tag in (None, True, "default"):
        return next(e for e in entries if e.default) if any(e.default for e in entries) else entries[0]
    tag = str(tag)
    exact = [e for e in entries if e.tag == tag]
    # An unprefixed timm tag is accepted when no other publisher uses it.
    loose = exact or [e for e in entries if e.tag == TIMM_PREFIX + tag]
    if len(loose) == 1:
        return loose[0]
    tags = [e.tag for e in entries]
    close = difflib.get_close_matches(tag, tags, n=4, cutoff=0.4)
    hint = f"; closest: {', '.join(f'{model}:{t}' for t in close)}" if close else f"; {model} has {', '.join(tags[:6])}"
    raise UnknownWeightsError(f"unknown weights tag {tag!r} for {model}{hint} (`resnet.weights.entries_for('{model}')` lists all)")
