"""Where the library keeps files of its own (caches), free of PyTorch."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$RESNET_CACHE_DIR``, else ``~/.cache/resnet``."""
    env = os.environ.get("RESNET_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnet"
