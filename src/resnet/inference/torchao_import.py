"""Importing TorchAO (``torchao``) quietly, with one clear error when it is not installed.

TorchAO 0.18 registers an enum as a pytree constant at import, and PyTorch 2.14 logs a deprecation line for it
on stderr (``torch.utils._pytree``); that line says nothing to a user of this library, so it is held back
while TorchAO imports, and only then.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from ..errors import UsageError

_PYTREE_LOGGER = "torch.utils._pytree"


def torchao_module(name: str, purpose: str) -> ModuleType:
    """Import ``name`` (a ``torchao`` module) for ``purpose``; :class:`UsageError` when TorchAO is not installed."""
    logger = logging.getLogger(_PYTREE_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return importlib.import_module(name)
    except ImportError as err:
        message = f"{purpose} needs the torchao package (pip install torchao), which did not import: {err}"
        raise UsageError(message) from None
    finally:
        logger.setLevel(level)
