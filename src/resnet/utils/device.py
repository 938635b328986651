"""Turning a ``device`` value (cpu, cuda, cuda:N, auto) into a ``torch.device``: one rule for every command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"


def resolve_device(name: str | None) -> "torch.device":
    """``None`` / ``auto``: CUDA when PyTorch sees a GPU, else the CPU; :class:`UsageError` for others."""
    import torch

    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r} for `device`; use {DEVICE_CHOICES}") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"device {name!r} is not supported for `device`; use {DEVICE_CHOICES}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("`device` cuda asked for, but no GPU is visible to PyTorch; use `device` cpu")
    return device
