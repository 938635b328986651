"""What ``resnet eval`` and ``resnet predict`` ask of the library, as typed requests, and what they get back.

A request names its SOURCE(s) and how to load, score or predict; :func:`run_eval` and :func:`run_predict` decide
whether a SOURCE is a detection / segmentation run (scored and drawn by :mod:`.dense`) or a classifier (the test
protocols, :func:`~resnet.evaluate.ensemble.evaluate`, :func:`~resnet.evaluate.predict.predict_files`), load it,
and return result records. The command line only turns its options into a request, calls, and prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..data.scan import find_images
from ..errors import DataError, UsageError
from ..inference.network import Network
from ..utils.limits import MAX_SIDE
from ..utils.modes import DEFAULT_ENGINE, NONE, is_eager
from .dense import DenseEval, DrawnPrediction, dense_task_of, evaluate_dense_source, predict_dense
from .ensemble import EvalReport
from .predict import Failure, Prediction


@dataclass(frozen=True)
class LoadOptions:
    """How a SOURCE becomes a network ready to run: its name and origin where the file carries none, whether
    untrained weights are accepted, where it runs, its optimised mode and engine, and size overrides."""

    model: str | None = None  # network name for checkpoints that carry none
    checkpoint_source: str = "auto"  # the checkpoint's origin (`resnet.utils.modes.ORIGINS`)
    allow_untrained: bool = False
    device: str | None = "auto"
    optimize: str = NONE
    engine: str = DEFAULT_ENGINE
    calibration: str | None = None  # image file or folder for int8 / engine checks
    resize: int | None = None
    crop: int | None = None


def load(source: str, options: LoadOptions) -> Network:
    """``source`` loaded and placed (an optimised mode runs on the CPU when ``device`` is auto), its sizes
    overridden; not yet optimised (:func:`ready`)."""
    from ..inference.prepare import device_for
    from .sources import resolve_source

    member = resolve_source(source, model_name=options.model, checkpoint_source=options.checkpoint_source,
                            allow_untrained=options.allow_untrained)
    member.place(device_for(options.device, options.optimize))
    return member


def with_sizes(member: Network, resize: int | None, crop: int | None) -> Network:
    """``member`` with its preprocessing's ``resize`` / ``crop`` replaced where given (a usage error naming them
    when they do not fit)."""
    for name, value in (("resize", resize), ("crop", crop)):
        if value is not None and not 1 <= value <= MAX_SIDE:
            raise UsageError(f"`{name}` must be from 1 to {MAX_SIDE} pixels, got {value}")
    if resize or crop:
        try:
            member.preprocess = member.preprocess.with_sizes(resize, crop)
        except ValueError as err:
            raise UsageError(f"`resize` {resize} / `crop` {crop} for {member.name}: {err}") from None
    return member


def ready(member: Network, options: LoadOptions, batch: int) -> Network:
    """``member`` optimised for ``options.optimize`` on its engine, chosen at ``batch`` (never at the number of
    inputs: an answer must not depend on what else is passed); eager stays as it is."""
    if not is_eager(options.optimize):
        from ..inference.prepare import prepare

        prepare(member, options.optimize, engine=options.engine, calibration=options.calibration, batch=batch)
    return member


# -- eval -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRequest:
    """Score ``sources`` (several: also as an ensemble) on data under a test protocol; a single detection /
    segmentation run is scored on its test photos instead."""

    sources: tuple[str, ...]
    data: str | None = None  # data set name; with `data_dir` None too, the data the run recorded
    data_dir: str | None = None
    split: str | None = None
    protocol: str = "center"
    scales: tuple[int, ...] | None = None  # multiscale: shorter sides
    shift: int | None = None  # shift: pixels each view moves
    batch_size: int = 256
    limit: int | None = None  # images spread evenly over the data
    load: LoadOptions = field(default_factory=LoadOptions)


def run_eval(request: EvalRequest, progress: Callable[[int, int], None] | None = None) -> EvalReport | DenseEval:
    """The scores ``request`` asks for; ``progress(done, total)`` after each batch of a classifier's data."""
    if request.limit is not None and request.limit < 1:
        raise UsageError(f"`limit` must be a positive integer, got {request.limit}")
    if request.batch_size < 1:
        raise UsageError(f"`batch_size` must be a positive integer, got {request.batch_size}")
    if len(request.sources) == 1 and dense_task_of(request.sources[0]):
        return evaluate_dense_source(request.sources[0], request.data_dir, limit=request.limit)
    from ..inference.protocols import get_protocol
    from .data import data_or_recorded, open_scored_data
    from .ensemble import evaluate

    protocol = get_protocol(request.protocol, list(request.scales) if request.scales else None, request.shift)
    members = [load(s, request.load) for s in request.sources]
    name, data_dir = data_or_recorded(request.data, request.data_dir, members[0])
    data = open_scored_data(name, data_dir, request.split, members[0], limit=request.limit,
                            channels=members[0].preprocess.channels,
                            recorded=request.data is None and request.data_dir is None)
    for m in members:
        ready(with_sizes(m, request.load.resize, request.load.crop), request.load, request.batch_size)
    total = len(data)
    return evaluate(members, data, protocol, batch_size=request.batch_size,
                    progress=None if progress is None else (lambda done: progress(done, total)))


# -- predict ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictRequest:
    """Answer for the image files in ``inputs`` (files or folders searched for images) with ``source``: a
    classifier's top classes, or a detection / segmentation run's predictions drawn into ``out``."""

    source: str
    inputs: tuple[str, ...]
    top: int = 5
    protocol: str = "center"
    batch_size: int = 64
    strict: bool = False  # damaged files are failures, not answers marked damaged
    out: str | None = None  # pictures: a dense run's drawn photos, or the explained ones (`explain`)
    explain: bool = False  # the caller draws explained pictures of the answers into `out`
    threshold: float = 0.5  # detection: lowest score drawn
    load: LoadOptions = field(default_factory=LoadOptions)


@dataclass
class ClassPredictions:
    """A classifier's answers, produced as they are read (``items``: one :class:`Prediction` or :class:`Failure`
    per file, in order); ``member`` is the network, ready in its mode."""

    source: str
    protocol: str
    member: Network
    items: Iterator[Prediction | Failure]

    def record(self, predictions: list[Prediction], failures: list[Failure]) -> dict[str, Any]:
        return {"source": self.source, "model": self.member.model_name, "protocol": self.protocol,
                "engine": self.member.metadata.get("engine", "pytorch eager"),
                "predictions": [p.as_dict() for p in predictions], "errors": [f.as_dict() for f in failures]}


@dataclass
class DrawnPredictions:
    """A detection / segmentation run's predictions, drawn (``drawn``) or not (``failed``: path, reason)."""

    source: str
    drawn: list[DrawnPrediction]
    failed: list[tuple[str, str]]

    def record(self) -> dict[str, Any]:
        return {"source": self.source, "predictions": [d.__dict__ for d in self.drawn],
                "errors": [{"path": p, "error": r} for p, r in self.failed]}


def run_predict(request: PredictRequest) -> ClassPredictions | DrawnPredictions:
    """What ``request`` asks: a dense run's drawings (made here), or a classifier ready to answer file by file."""
    dense = dense_task_of(request.source) is not None
    if dense and not request.out:
        raise UsageError("detection / segmentation runs draw their predictions: give `out`, the folder for the PNG files")
    if dense and not 0.0 <= request.threshold <= 1.0:
        raise UsageError(f"`threshold` must be a score from 0 to 1, got {request.threshold}")
    if not dense and request.out and not request.explain:
        raise UsageError("`out` is where `explain` writes its pictures (and where detection / segmentation runs draw "
                         "theirs); add `explain`, or leave `out` out")
    if request.top < 1:
        raise UsageError(f"`top` must be at least 1, got {request.top}")
    if request.batch_size < 1:
        raise UsageError(f"`batch_size` must be positive, got {request.batch_size}")
    if dense:
        paths = _images(request.inputs)
        drawn, failed = predict_dense(request.source, paths, Path(str(request.out)), threshold=request.threshold)
        return DrawnPredictions(request.source, drawn, failed)
    from ..inference.protocols import get_protocol
    from .predict import predict_files

    member = with_sizes(load(request.source, request.load), request.load.resize, request.load.crop)
    paths = _images(request.inputs)
    ready(member, request.load, request.batch_size)
    items = predict_files(member, paths, top=request.top, batch_size=request.batch_size,
                          protocol=get_protocol(request.protocol), strict=request.strict)
    return ClassPredictions(request.source, request.protocol, member, items)


def _images(inputs: tuple[str, ...]) -> list[Path]:
    """The image files under ``inputs``; none is an error naming them."""
    paths = find_images(list(inputs))
    if not paths:
        raise DataError(f"no image files found in {', '.join(inputs)}; give image files or folders that hold some")
    return paths
