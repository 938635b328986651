"""Our own engine: fused oneDNN float / bfloat16 runners and int8 runners, built on PyTorch's oneDNN operators.

These operators (``torch.ops.mkldnn._convolution_pointwise``, ``torch.ops.onednn.qconv_pointwise``) are
PyTorch internals, not a public API: :data:`TESTED_TORCH` names the PyTorch releases this engine is tested
on, and :func:`unsupported_reason` says why the running one cannot run it (None: it can).
"""

from __future__ import annotations

import re

#: The PyTorch releases (major.minor, inclusive) this engine was last checked on. A release outside it may
#: have changed the private operators' signatures: the engine then steps aside (``auto`` skips it with one line,
#: an explicit ``engine="ours"`` is refused) until ``tests/test_inference_ours.py`` passes on it and this range grows.
TESTED_TORCH = ((2, 6), (2, 14))


def torch_release(version: str) -> tuple[int, int]:
    """``"2.14.1+cpu"`` -> ``(2, 14)``."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"cannot read a PyTorch version from {version!r}")
    return int(match.group(1)), int(match.group(2))


def unsupported_reason(version: str | None = None) -> str | None:
    """Why our engine cannot run under this PyTorch (``version``, default the running one), or None when it can."""
    import torch

    version = version or torch.__version__
    low, high = TESTED_TORCH
    if not low <= torch_release(version) <= high:
        return (f"our fused oneDNN engine is tested on PyTorch {low[0]}.{low[1]} to {high[0]}.{high[1]}, and this is "
                f"{version}: its private operators may have changed")
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return "this PyTorch has no oneDNN kernels"
    return None
