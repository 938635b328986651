"""Which published weights a file on disk is: so a torchvision / timm / akamaster file loaded by path gets the
preprocessing it was published with, exactly as when it is loaded by name (``resnet50:tv_in1k_v2``).

A file is matched to an entry of :mod:`resnet.weights.registry` by the sha256 prefix its publisher puts in the file
name (``resnet50-11ad3fa6.pth``), else by the sha256 of its content (a renamed copy). timm's Hugging Face files
(``model.safetensors``) publish no hash and match neither way.
"""

from __future__ import annotations

from pathlib import Path

from ..utils.download import sha256_of
from .registry import WeightEntry, entries_for, sha256_prefix_of


def entry_for_file(path: Path, model: str) -> WeightEntry | None:
    """The published entry of ``model`` that ``path`` is a copy of, or ``None``."""
    entries = [e for e in entries_for(model) if e.sha256_prefix]
    if not entries:
        return None
    in_name = sha256_prefix_of(path.name)
    if in_name:
        named = [e for e in entries if e.sha256_prefix and _same_prefix(in_name, e.sha256_prefix)]
        if named:
            return named[0]
    digest = sha256_of(path)
    return next((e for e in entries if e.sha256_prefix and digest.startswith(e.sha256_prefix)), None)


def _same_prefix(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)
