"""Getting a loaded :class:`~resnet.inference.network.Network` ready to run in a mode on an engine: one step for
``resnet eval``, ``resnet predict`` and ``resnet serve``.

>>> prepare(network, "int8")                            # calibrated on the training data the run recorded
>>> prepare(network, "fp32", engine="auto", batch=32)   # the fastest engine here, checked on the same images
>>> network.metadata["engine"]                          # what runs it

:func:`prepare` takes its images (int8 calibration; the check of an engine other than ours against the float
model) from :func:`~resnet.inference.calibration.calibration_batch`: the images or folder named, else the
training data the run recorded, never the inputs under test. :func:`apply_optimize` is the step without that
choice, for callers holding normalised images already.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..utils.modes import DEFAULT_ENGINE, MODES, OPTIMIZE_MODES, OURS, canonical_mode, is_eager, needs_images
from .calibration import calibration_batch
from .engines import check_engine, engine_of
from .network import Network
from .optimize import optimize


class Optimizable(Protocol):
    """What :func:`apply_optimize` needs of a loaded network (e.g. :class:`~resnet.inference.network.Network`)."""

    model: nn.Module
    device: torch.device
    optimized: Any
    forward: Any
    metadata: dict[str, Any]


def prepare(network: Network, mode: str, *, engine: str = DEFAULT_ENGINE,
            calibration: str | os.PathLike[str] | Tensor | None = None, batch: int | None = None) -> Network:
    """``network`` optimised in place for ``mode`` on ``engine`` (either spelling of eager leaves it as it is),
    the engine recorded in its metadata; returned for chaining.

    When ``mode`` and ``engine`` need images (:func:`~resnet.utils.modes.needs_images`), ``calibration`` gives
    them: normalised images ``[N, C, H, W]``, or an image file or folder; ``None`` takes them from the training
    data the run recorded. ``batch`` is the batch the caller will run (e.g. a server's largest), at which an
    engine other than ours is chosen."""
    check_mode(mode, engine)
    images = None
    if needs_images(mode, engine):
        images = calibration if isinstance(calibration, Tensor) else calibration_batch(network, calibration)
    apply_optimize(network, mode, images, engine=engine, batch=batch)
    return network


def check_mode(mode: str, engine: str) -> None:
    """:class:`UsageError` for an unknown mode (either spelling) or an ``engine`` that cannot run it."""
    if canonical_mode(mode) not in MODES:
        raise UsageError(f"unknown `optimize` {mode!r}; choose one of {', '.join(OPTIMIZE_MODES)}")
    check_engine(engine, canonical_mode(mode))


def apply_optimize(member: Optimizable, mode: str, calibration: Tensor | None = None, *, engine: str = DEFAULT_ENGINE,
                   batch: int | None = None) -> None:
    """Run ``member`` through :func:`optimize` in ``mode`` (either spelling of eager leaves it as it is): its
    ``forward`` becomes the optimised callable (float32 logits) and its metadata records the mode and the
    engine that runs it (``metadata["engine"]``, as :func:`~resnet.inference.engines.engine_of` names it).

    ``engine`` other than ours is chosen at ``batch`` images of the member's input size (the batch the caller
    will run, e.g. a server's largest); its answers are checked against the float model on ``calibration``
    (normalised images), which it therefore needs in every mode."""
    check_mode(mode, engine)
    if is_eager(mode):
        return
    if member.device.type != "cpu":
        raise UsageError(f"`optimize` {mode} runs on the CPU; use `device` cpu with it")
    example = None
    if engine != OURS:
        if calibration is None or batch is None or batch < 1:
            raise UsageError(f"`engine` {engine} compares engines on calibration images at one batch size: pass "
                             "`calibration` images and a positive `batch`, or use `engine` ours")
        example = example_batch(calibration, batch)
    optimized = optimize(member.model, mode, calibration=calibration, example_input=example, engine=engine)
    member.optimized = optimized
    member.forward = lambda x: optimized(x).float()
    member.metadata = {**member.metadata, "optimize": mode, "engine": engine_of(optimized)}


def example_batch(images: Tensor, batch: int) -> Tensor:
    """``batch`` images of the shape of ``images`` [N, C, H, W], cycling through them: a batch to measure at."""
    index = torch.arange(batch) % len(images)
    return images.index_select(0, index).contiguous()
