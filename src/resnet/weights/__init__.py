"""Named pretrained weights: a registry built from torchvision / timm at run time, a checked download cache.

>>> import resnet
>>> model = resnet.create_model("resnet50", pretrained=True)            # the source's recommended weights
>>> model = resnet.create_model("resnet50", pretrained="timm:a1_in1k")  # one tag
>>> model.preprocess                                                     # what the weights expect
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .download import DownloadError, DownloadPolicy, OfflineError, offline_mode
from .registry import UnknownWeightsError, WeightEntry, all_entries, entries_for, find, split_name
from .store import Loaded, cache_path, ensure, import_file, load_entry, locate, resnet_home, verify_cached

_FILE_SUFFIXES = (".pth", ".pt", ".th", ".safetensors", ".bin")


def looks_like_path(value: str) -> bool:
    """A weights argument that names a file or folder rather than a tag."""
    return os.path.exists(value) or os.sep in value or value.endswith(_FILE_SUFFIXES)


def pretrained_model(name: str, pretrained: bool | str | os.PathLike[str], *, features_only: bool = False,
                     out_indices: Any = None, **overrides: Any):  # noqa: ANN201 - returns resnet.ResNet
    """``create_model(name, pretrained=...)``: named weights (``True`` / tag) or a weights file."""
    from ..models.interop import load_pretrained
    from ..models.registry import create_model

    if isinstance(pretrained, (str, os.PathLike)) and not isinstance(pretrained, bool) and looks_like_path(str(pretrained)):
        model = create_model(name, features_only=features_only, out_indices=out_indices, **overrides)
        load_pretrained(model, Path(pretrained), strict=not features_only)
        return model
    entry = find(name, pretrained if isinstance(pretrained, str) else True)
    if entry.num_classes and "num_classes" not in overrides:
        overrides["num_classes"] = entry.num_classes
    model = create_model(name, features_only=features_only, out_indices=out_indices, **overrides)
    load_entry(model, entry)
    return model


__all__ = [
    "DownloadError", "DownloadPolicy", "Loaded", "OfflineError", "UnknownWeightsError", "WeightEntry", "all_entries",
    "cache_path", "ensure", "entries_for", "find", "import_file", "load_entry", "locate", "looks_like_path",
    "offline_mode", "pretrained_model", "resnet_home", "split_name", "verify_cached",
]
