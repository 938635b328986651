"""One engine ``optimize`` may pick for a mode: what the engines offer (:mod:`resnet.inference.engines`,
:mod:`resnet.inference.pytorch`) and ``engine="auto"`` measures (:mod:`resnet.inference.choice`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class Candidate:
    """One engine for one mode: its label, its family (an :data:`~resnet.utils.modes.ENGINES` name) and how to build it."""

    label: str
    family: str
    build: Callable[[], nn.Module]
