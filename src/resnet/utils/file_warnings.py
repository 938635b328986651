"""Warnings about a file name the file: what a library says while reading one (PyTorch's unpickler, safetensors...)
is said again with the file's path in front."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator


@contextlib.contextmanager
def naming_file(path: str | os.PathLike[str]) -> Iterator[list[warnings.WarningMessage]]:
    """Within the block, warnings (those the filters let through) are held, then issued again as ``PATH: message``
    (once each, of their own category), however the block ends. Yields the held warnings, for the caller to read."""
    pending: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as held:
            try:
                yield held
            finally:
                pending = list(held)
    finally:
        _reissue(os.fspath(path), pending)


def _reissue(name: str, pending: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for caught in pending:
        text = str(caught.message).strip()
        text = text if name in text else f"{name}: {text}"
        if text not in seen:
            seen.add(text)
            category = caught.category if issubclass(caught.category, Warning) else UserWarning
            warnings.warn(text, category, stacklevel=4)
