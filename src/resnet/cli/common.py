"""Helpers shared by the subcommands."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import UsageError


def build_model(name: str, **overrides: Any):  # noqa: ANN201 - returns resnet.ResNet
    """``create_model`` with bad names or settings turned into a usage error (exit 2)."""
    from ..models import create_model

    try:
        return create_model(name, **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None


def apply_sizes(member: Any, resize: int | None, crop: int | None) -> None:
    """``--resize`` / ``--crop`` overrides of a member's preprocessing (eval and predict)."""
    from ..evaluate.preprocess import MAX_SIDE

    for name, value in (("resize", resize), ("crop", crop)):
        if value is not None and not 1 <= value <= MAX_SIDE:
            raise UsageError(f"--{name} must be from 1 to {MAX_SIDE} pixels, got {value}")
    if resize or crop:
        try:
            member.preprocess = member.preprocess.with_sizes(resize, crop)
        except ValueError as err:
            raise UsageError(f"--resize {resize} / --crop {crop} for {member.name}: {err}") from None


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def console():  # noqa: ANN201 - rich.console.Console
    from rich.console import Console

    # Piped output (CI logs, files) gets a wide fixed width so tables are never truncated.
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
