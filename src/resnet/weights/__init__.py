"""Named pretrained weights: a registry built from torchvision / timm at run time, a checked download cache.

>>> import resnet
>>> model = resnet.create_model("resnet50", pretrained=True)            # the source's recommended weights
>>> model = resnet.create_model("resnet50", pretrained="timm:a1_in1k")  # one tag
>>> model.preprocess                                                     # what the weights expect
>>> model = resnet.create_model("hf-hub:me/resnet20-cifar10", pretrained=True)  # a Hub folder, via its cache
"""

from __future__ import annotations

from ..utils.download import DownloadError, DownloadPolicy, OfflineError, offline_mode
from .hub import HUB_PREFIX, hub_model, is_hub_name
from .pretrained import backbone, create_model, looks_like_path, pretrained_model, resolve_pretrained
from .registry import UnknownWeightsError, WeightEntry, all_entries, entries_for, find, split_name
from .store import (Loaded, cache_path, ensure, import_file, load_entry, locate, resnet_home, verification, verify,
                    verify_cached)

__all__ = [
    "DownloadError", "DownloadPolicy", "HUB_PREFIX", "hub_model", "is_hub_name", "Loaded", "OfflineError", "UnknownWeightsError", "WeightEntry", "all_entries",
    "backbone", "cache_path", "create_model", "ensure", "entries_for", "find", "import_file", "load_entry", "locate",
    "looks_like_path", "offline_mode", "pretrained_model", "resnet_home", "resolve_pretrained", "split_name",
    "verification", "verify", "verify_cached",
]
