"""Named pretrained weights: a registry built from torchvision / timm at run time, a checked download cache.

>>> import resnet
>>> model = resnet.create_model("resnet50", pretrained=True)            # the source's recommended weights
>>> model = resnet.create_model("resnet50", pretrained="timm:a1_in1k")  # one tag
>>> model.preprocess                                                     # what the weights expect
>>> model = resnet.create_model("hf-hub:me/resnet20-cifar10", pretrained=True)  # a Hub folder, via its cache
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.download import DownloadError, DownloadPolicy, OfflineError, offline_mode
from ..utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from .home import check_fetchable, resnet_home, split_name
    from .hub import HUB_PREFIX, hub_model, is_hub_name
    from .pretrained import backbone, create_model, download, looks_like_path, pretrained_model, resolve_pretrained
    from .registry import UnknownWeightsError, WeightEntry, all_entries, entries_for, find
    from .store import (Loaded, cache_path, ensure, import_file, load_entry, locate, verification, verify,
                        verify_cached)

# PyTorch, torchvision and timm are imported on the first use of a name that needs them: ``check_fetchable`` (no
# network, nothing cached) answers without them.
_EXPORTS = exports({
    "home": ["check_fetchable", "resnet_home", "split_name"],
    "hub": ["HUB_PREFIX", "hub_model", "is_hub_name"],
    "pretrained": ["backbone", "create_model", "download", "looks_like_path", "pretrained_model", "resolve_pretrained"],
    "registry": ["UnknownWeightsError", "WeightEntry", "all_entries", "entries_for", "find"],
    "store": ["Loaded", "cache_path", "ensure", "import_file", "load_entry", "locate", "verification", "verify",
              "verify_cached"],
})
__all__ = ["DownloadError", "DownloadPolicy", "OfflineError", "offline_mode", *_EXPORTS]
__getattr__ = lazy_attributes(__name__, _EXPORTS)
