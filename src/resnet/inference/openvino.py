"""OpenVINO's CPU plugin as an engine: f32, bf16 (its default on CPUs with bfloat16 units) and int8 (NNCF).

- The network is converted straight from PyTorch (``openvino.convert_model`` with an example batch; the
  batch axis stays free), so no ONNX file is needed; an ONNX file (e.g. ONNX Runtime's QDQ int8) runs too.
- ``f32`` forces float32 arithmetic (``INFERENCE_PRECISION_HINT``): left alone, OpenVINO runs a float model
  in bfloat16 on CPUs that have it, which is the ``bf16`` engine here, offered only where the plugin lists
  ``BF16`` among its capabilities.
- ``int8`` is NNCF's post-training quantization of the OpenVINO model (its default preset for CNNs:
  symmetric int8 weights and activations, fast bias correction), calibrated on the given images.
- Each call is run as OpenVINO advises for its size: small batches on one request compiled with
  ``PERFORMANCE_HINT`` LATENCY (all threads on one image), larger ones split over the requests of a model
  compiled with THROUGHPUT (one stream per core group). Each compiled model is made on first use (a
  fraction of a second).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..errors import ResNetError, UsageError

PRECISIONS = ("f32", "bf16")  # INFERENCE_PRECISION_HINT values this module asks for


def available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def _openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise UsageError("OpenVINO is not installed; install the openvino package to use `engine` openvino") from None
    return openvino


@functools.lru_cache(maxsize=1)
def core() -> Any:
    """The process's one ``openvino.Core``: every Core owns thread pools, and Cores made and freed per call
    crashed a long test run (SIGSEGV after a later fork)."""
    return _openvino().Core()


def bf16_available() -> bool:
    """Whether OpenVINO's CPU plugin runs bfloat16 arithmetic on this CPU."""
    if not available():
        return False
    try:
        return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


@contextlib.contextmanager
def _quiet():  # noqa: ANN202 - converters and NNCF narrate on stdout / stderr and warn about tracing
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def convert(model: nn.Module, example: Tensor) -> Any:
    """``model`` as an OpenVINO model (batch axis free), traced on ``example``."""
    ov = _openvino()
    try:
        with _quiet(), torch.no_grad():
            return ov.convert_model(model.eval(), example_input=example[:1].float())
    except Exception as err:  # the converter raises its own exception types
        raise ResNetError(f"OpenVINO cannot convert the network: {_first_line(err)}") from None


def convert_program(model: nn.Module, example: Tensor, dims: dict[int, object]) -> Any:
    """``model`` as an OpenVINO model converted from its ``torch.export`` program (no TorchScript tracing):
    ``dims`` (see :func:`resnet.inference.graphs.dynamic_dims`) are the input axes left free, the others are fixed
    at ``example``'s shape."""
    ov = _openvino()
    try:
        with _quiet(), torch.no_grad():
            program = torch.export.export(model.eval(), (_example_for(example, dims),), dynamic_shapes=(dims or None,))
            return ov.convert_model(program)
    except Exception as err:  # the exporter and the converter raise their own exception types
        raise ResNetError(f"OpenVINO cannot convert the network: {_first_line(err)}") from None


def _example_for(example: Tensor, dims: dict[int, object]) -> Tensor:
    """A batch of 2 at least when the batch is dynamic (``torch.export`` specialises a batch of 1)."""
    example = example.float()
    if 0 in dims and len(example) < 2:
        example = example.expand(2, *example.shape[1:]).contiguous()
    return example


def quantize_nncf(ov_model: Any, calibration: Sequence[Tensor]) -> Any:
    """NNCF's post-training int8 quantization of ``ov_model``, calibrated on ``calibration`` (batches of images)."""
    if not calibration:
        raise UsageError("OpenVINO int8 needs calibration images: pass `calibration`")
    try:
        import nncf
    except ImportError:
        raise UsageError("OpenVINO int8 needs NNCF, which is not installed (the nncf package)") from None
    nncf.set_log_level(logging.ERROR)
    batches = [b.detach().float().contiguous().numpy() for b in calibration]
    try:
        with _quiet():
            return nncf.quantize(ov_model, nncf.Dataset(batches), subset_size=len(batches))
    except Exception as err:  # NNCF raises many types
        raise ResNetError(f"NNCF cannot quantize the network: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class OpenVinoEngine(nn.Module):
    """An OpenVINO model (or ONNX file) compiled for the CPU: float NCHW in, float32 logits out.

    Calls of fewer than ``2 x threads`` images run on one LATENCY request; larger ones are split over the
    requests of a THROUGHPUT compilation (see the module docstring).
    """

    def __init__(self, source: Any, threads: int, label: str, *, precision: str = "f32") -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.ov = _openvino()
        self.source = str(source) if isinstance(source, (str, os.PathLike, Path)) else source
        self.threads, self.precision, self.engine = threads, precision, label
        self._latency: Any = None
        self._throughput: Any = None
        self._latency_request = self._compiled("LATENCY").create_infer_request()  # fail here, not on first call

    def _compiled(self, hint: str) -> Any:
        config = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": self.precision}
        try:
            return core().compile_model(self.source, "CPU", config)
        except Exception as err:  # OpenVINO raises its own exception types
            raise ResNetError(f"OpenVINO cannot compile the network for this CPU: {_first_line(err)}") from None

    def forward(self, x: Tensor) -> Tensor:
        x = x.detach().float().contiguous()
        if len(x) < 2 * self.threads:
            out = self._latency_request.infer({0: x.numpy()})
            return torch.from_numpy(next(iter(out.values())).copy())
        return self._run_throughput(x)

    def _run_throughput(self, x: Tensor) -> Tensor:
        if self._throughput is None:
            compiled = self._compiled("THROUGHPUT")
            self._throughput = self.ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue = self._throughput
        results: dict[int, Any] = {}
        queue.set_callback(lambda request, index: results.__setitem__(index, request.get_output_tensor(0).data.copy()))
        pieces = x.split(-(-len(x) // len(queue)))
        for index, piece in enumerate(pieces):
            queue.start_async({0: piece.numpy()}, index)
        queue.wait_all()
        return torch.cat([torch.from_numpy(results[i]) for i in range(len(pieces))])
