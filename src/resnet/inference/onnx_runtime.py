"""ONNX Runtime sessions and its static int8 quantization: the peers our modes are measured against,
and the runtime that checks an exported ``.onnx`` file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ResNetError, UsageError


def _ort():  # noqa: ANN202 - the onnxruntime module
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("onnxruntime is not installed; install it (pip install onnxruntime) to run ONNX models") from None
    return onnxruntime


def machine_threads() -> int:
    """Cores this process may run on (respects taskset / cgroup CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class OrtModel:
    """An ONNX Runtime session called like a module: float NCHW tensor in, float32 logits tensor out."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, *, spin: bool = False) -> None:
        ort = _ort()
        opts = ort.SessionOptions()
        # ONNX Runtime's workers busy-wait after each run by default; beside PyTorch's own threads on
        # the same cores that steals the CPU from whatever runs next (interleaved benchmarks included).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or machine_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own unexported exception types
            raise ResNetError(f"ONNX Runtime cannot load {path}: {str(err).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.path = Path(path)

    def __call__(self, x: Tensor) -> Tensor:
        out = self.session.run(None, {self.input_name: x.detach().float().contiguous().numpy()})[0]
        return torch.from_numpy(out)


class _Batches:
    """ONNX Runtime's CalibrationDataReader protocol over tensors."""

    def __init__(self, input_name: str, batches: Iterable[Tensor]) -> None:
        self.input_name = input_name
        self._it = iter([b.detach().float().numpy() for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch}


#: ONNX Runtime's two static int8 forms: ``qdq`` (QuantizeLinear/DequantizeLinear pairs around float
#: operators, uint8 activations and int8 weights: the form its guide recommends) and ``qoperator-u8u8``
#: (QLinearConv and friends, uint8 activations and uint8 weights: the form its guide suggests trying on
#: x86 CPUs without VNNI).
ORT_INT8_FORMS = ("qdq", "qoperator-u8u8")


def quantize_onnx_static(
    fp32_path: str | os.PathLike[str], out_path: str | os.PathLike[str], calibration: Sequence[Tensor], *, per_channel: bool = True,
    form: str = "qdq",
) -> Path:
    """ONNX Runtime's post-training static quantization (min/max calibration) in ``form`` (:data:`ORT_INT8_FORMS`)."""
    _ort()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise UsageError("ONNX Runtime static quantization needs at least one calibration batch")
    if form not in ORT_INT8_FORMS:
        raise UsageError(f"unknown ONNX Runtime int8 form {form!r}; choose one of {', '.join(ORT_INT8_FORMS)}")
    qformat, wtype = (QuantFormat.QDQ, QuantType.QInt8) if form == "qdq" else (QuantFormat.QOperator, QuantType.QUInt8)
    out = Path(out_path)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Folds constants and fuses Conv+BN first, as ONNX Runtime's quantization guide recommends.
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        input_name = _ort().InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        quantize_static(
            str(pre), str(out), _Batches(input_name, calibration),
            quant_format=qformat, activation_type=QuantType.QUInt8, weight_type=wtype,
            per_channel=per_channel, calibrate_method=CalibrationMethod.MinMax,
        )
    return out
