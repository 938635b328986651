"""Where named weights live on this machine, and whether they can be fetched, told without PyTorch, torchvision
or timm: on a machine without network, asking for weights that are not cached gets its one line after one
probe of the publishers' hosts (at most :data:`~resnet.utils.download.PROBE_TIMEOUT`), not after importing
PyTorch and reading every publisher's metadata first (:mod:`resnet.weights.registry`).

The check is conservative: whenever a file of the network may be on this machine (a manifest record or a file
named after it in our cache, or in torchvision's hub folder), or a host that may serve it answers, it says
nothing and the full lookup runs (which loads a cached file offline, or downloads).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ..reference import AKAMASTER_URL
from ..utils.download import PARTIAL_SUFFIX, OfflineError, offline_mode, reachable_any, unreachable_reason
from . import manifest

#: How each publisher's tags begin (``resnet50:tv_in1k_v2``, ``resnet50:timm:a1_in1k``,
#: ``resnet56:akamaster_cifar10``); :mod:`resnet.weights.registry` names its entries with them.
TAG_PREFIXES = {"torchvision": "tv_", "timm": "timm:", "akamaster": "akamaster_"}
#: torchvision's weights host: every URL of ``torchvision.models.get_model_weights`` starts with it (a test
#: checks this); only probed, never downloaded from by this name.
TORCHVISION_URL = "https://download.pytorch.org/models/"
MIRROR_ENV = "RESNET_WEIGHTS_MIRROR"  # replaces the host of every direct (non-Hub) URL


def split_name(spec: str) -> tuple[str, str | None]:
    """``resnet50:timm:a1_in1k`` → (``resnet50``, ``timm:a1_in1k``); ``resnet50`` → (``resnet50``, None)."""
    model, sep, tag = spec.partition(":")
    return model, (tag if sep else None)


def resnet_home() -> Path:
    env = os.environ.get("RESNET_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "resnet"


def weights_dir() -> Path:
    """The cache folder, holding the manifest of full sha256s (:mod:`resnet.weights.manifest`)."""
    return resnet_home() / "weights"


def mirror() -> str | None:
    """``RESNET_WEIGHTS_MIRROR``, the base URL that replaces the host of torchvision and akamaster files."""
    return os.environ.get(MIRROR_ENV, "").strip().rstrip("/") or None


def hub_endpoint() -> str:
    """The Hugging Face hub's address: ``HF_ENDPOINT``, else huggingface_hub's default."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``; without importing PyTorch when it is not imported yet (its rule: ``TORCH_HOME``,
    else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``, plus ``hub``; a test holds the two equal)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(os.path.expanduser(home)) / "hub"


def publisher_of(tag: str | None) -> str | None:
    """The publisher a tag names by its prefix; ``None`` for the recommended weights or an unprefixed tag."""
    return next((p for p, prefix in TAG_PREFIXES.items() if tag and tag.startswith(prefix)), None)


def publisher_url(publisher: str) -> str:
    """A URL on the host that serves ``publisher``'s files to this machine (the mirror where one is set)."""
    if publisher == "timm":
        return hub_endpoint()
    return mirror() or (TORCHVISION_URL if publisher == "torchvision" else AKAMASTER_URL)


def may_be_cached(model: str, tag: str | None) -> bool:
    """Whether a file of ``model``'s weights may be on this machine: a manifest record of it, or a file named after
    the network (``resnet50-11ad3fa6.pth``, ``timm--resnet50.a1_in1k/…``) in our cache or torchvision's."""
    records = manifest.read_manifest(weights_dir())
    if (f"{model}:{tag}" in records) if tag else any(name.startswith(f"{model}:") for name in records):
        return True
    named = re.compile(rf"(^|[/-]){re.escape(model)}[-._]")
    for folder in (weights_dir(), torch_hub_dir() / "checkpoints"):
        for path in folder.rglob("*") if folder.is_dir() else ():
            rel = path.relative_to(folder).as_posix()
            # huggingface_hub's bookkeeping (.cache/...) and a partial download (.part, which needs the network) are no file
            if named.search(rel) and not rel.endswith(PARTIAL_SUFFIX) and "/." not in "/" + rel and path.is_file():
                return True
    return False


def check_fetchable(model: str, tag: str | bool | None = None) -> None:
    """Raise :class:`~resnet.utils.download.OfflineError` at once when ``model:tag`` cannot be had: nothing of it
    is cached, and the host of the publisher its tag names (``tv_…``, ``timm:…``, ``akamaster_…``) does not answer
    (or ``HF_HUB_OFFLINE`` is set for the hub). For the recommended weights (no tag, ``True`` or ``default``),
    whose publisher only the metadata tells, that is when no file of the network is cached and no publisher's
    host answers. Otherwise nothing: the full lookup decides (an unknown name or tag gets its own error there)."""
    from ..models import get_spec  # the specs need no PyTorch

    tag = tag if isinstance(tag, str) and tag != "default" else None
    publisher = publisher_of(tag)
    if tag is not None and publisher is None:  # an unprefixed tag: the metadata says whether it exists
        return
    try:
        spec = get_spec(model)
    except ValueError:
        return
    if publisher is None and spec.shortcut == "none":  # a plain net: the lookup's message says whether any has weights
        return
    if may_be_cached(model, tag):
        return
    publishers = [publisher] if publisher else list(TAG_PREFIXES)
    urls = [publisher_url(p) for p in publishers if not (p == "timm" and offline_mode())]
    if urls and reachable_any(urls):
        return
    why = unreachable_reason(*urls) if urls else "offline (HF_HUB_OFFLINE is set)"
    if urls and offline_mode() and publisher is None:
        why += " and HF_HUB_OFFLINE is set"
    spec = f"{model}:{tag or 'default'}"
    what = spec if tag else f"the recommended weights of {model} ({spec}, where a publisher has any)"
    raise OfflineError(f"{why}: cannot fetch {what}, and no file of it is in the weights cache {weights_dir()}; on a "
                       f"connected machine `resnet.weights.download('{spec}')` gives its file; copy that file here and "
                       f"import it: `resnet.weights.import_file('FILE', '{spec}')`")
