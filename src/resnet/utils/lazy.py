"""Package attributes imported on first use (PEP 562), so that ``import resnet`` and ``resnet --help``
do not pay for PyTorch until something needs it."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``table[name]`` (a submodule) on first access."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def exports(groups: Mapping[str, list[str]]) -> dict[str, str]:
    """``{submodule: [names]}`` turned into the ``{name: submodule}`` table :func:`lazy_attributes` takes."""
    return {name: module for module, names in groups.items() for name in names}
