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

from ..errors import DataError, UsageError
from ..utils.modes import DEFAULT_ENGINE, MODES, OPTIMIZE_MODES, OURS, canonical_mode, checks_on_images, is_eager, needs_images
from .calibration import calibration_batch, recorded_data
from .engines import check_engine, engine_of
from .network import Network
from .optimize import AUTO_BATCH, optimize


class Optimizable(Protocol):
    """What :func:`apply_optimize` needs of a loaded network (e.g. :class:`~resnet.inference.network.Network`)."""

    model: nn.Module
    preprocess: Any
    device: torch.device
    optimized: Any
    forward: Any
    metadata: dict[str, Any]


def device_for(device: str | None, mode: str) -> str | None:
    """Where a network runs in ``mode``: ``device`` as given; ``auto`` (or none) with an optimised mode is the CPU,
    where those modes run."""
    return "cpu" if not is_eager(mode) and device in (None, "auto") else device


def prepare(network: Network, mode: str, *, engine: str = DEFAULT_ENGINE,
            calibration: str | os.PathLike[str] | Tensor | None = None, batch: int | None = None) -> Network:
    """``network`` optimised in place for ``mode`` on ``engine`` (either spelling of eager leaves it as it is),
    the engine recorded in its metadata; returned for chaining.

    int8 needs images (:func:`~resnet.utils.modes.needs_images`) and an engine other than ours is checked on
    them when there are some (:func:`~resnet.utils.modes.checks_on_images`): ``calibration`` gives them as
    normalised images ``[N, C, H, W]``, or an image file or folder; ``None`` takes them from the training data
    the run recorded (for the float modes, random inputs when it recorded none). ``batch`` is the batch the
    caller will run (e.g. a server's largest), at which an engine other than ours is chosen."""
    check_mode(mode, engine)
    images = calibration if isinstance(calibration, Tensor) else images_for(network, mode, engine, calibration)
    apply_optimize(network, mode, images, engine=engine, batch=batch)
    return network


def images_for(network: Network, mode: str, engine: str, images: str | os.PathLike[str] | None = None) -> Tensor | None:
    """The sample images ``mode`` on ``engine`` runs with (:func:`~resnet.inference.calibration.calibration_batch`):
    required for int8 (its calibration); for the float modes of an engine other than ours, the images it is
    checked on when ``images`` names some or the run recorded its training data, else None (random inputs)."""
    if needs_images(mode, engine):
        return calibration_batch(network, images)
    if not checks_on_images(mode, engine):
        return None
    if images is None and recorded_data(network) is None:
        return None
    try:
        return calibration_batch(network, images)
    except DataError:
        if images is not None:
            raise
        return None  # the recorded training data is not on this machine: checked on random inputs


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
    will run, e.g. a server's largest; default :data:`~resnet.inference.optimize.AUTO_BATCH`); its answers are
    checked against the float model on ``calibration`` (normalised images) when given, else on random inputs of
    the member's input size."""
    check_mode(mode, engine)
    if is_eager(mode):
        return
    if member.device.type != "cpu":
        raise UsageError(f"`optimize` {mode} runs on the CPU; use `device` cpu with it")
    example = None
    if engine != OURS:
        batch = AUTO_BATCH if batch is None else batch
        if batch < 1:
            raise UsageError(f"`engine` {engine} compares engines at one batch size: `batch` must be positive, got {batch}")
        # Without images (float modes: int8 without them is refused by optimize) engines are timed and checked on random inputs.
        example = example_batch(calibration, batch) if calibration is not None else random_batch(member.preprocess, batch)
    optimized = optimize(member.model, mode, calibration=calibration, example_input=example, engine=engine)
    member.optimized = optimized
    member.forward = lambda x: optimized(x).float()
    member.metadata = {**member.metadata, "optimize": mode, "engine": engine_of(optimized)}


def random_batch(preprocess: Any, batch: int) -> Tensor:
    """``batch`` random normalised images of the size ``preprocess`` (a :class:`~resnet.data.preprocess.Preprocess`) feeds."""
    size = preprocess.crop or preprocess.input_size
    return torch.randn(batch, preprocess.channels, size, size, generator=torch.Generator().manual_seed(0))


def example_batch(images: Tensor, batch: int) -> Tensor:
    """``batch`` images of the shape of ``images`` [N, C, H, W], cycling through them: a batch to measure at."""
    index = torch.arange(batch) % len(images)
    return images.index_select(0, index).contiguous()
