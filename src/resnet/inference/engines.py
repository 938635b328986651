"""The inference engines ``optimize`` can hand back: ours (fused oneDNN), ONNX Runtime and OpenVINO.

Every engine is an ``nn.Module`` taking float NCHW images (normalised as for the original model) and
returning float32 logits, with an ``engine`` attribute naming what runs it (:data:`ENGINE_LABELS`):

- ``ours``: :func:`resnet.inference.optimize` with ``engine="ours"`` (fused oneDNN float / int8 runners);
- ``onnxruntime``: the model exported to ONNX (dynamic batch) and run by ONNX Runtime's CPU provider,
  float32; for ``int8`` statically quantized by ONNX Runtime (per-channel weights, min/max
  calibration on the same images ours calibrates on) in either of its two forms, ``onnxruntime qdq``
  and ``onnxruntime qoperator-u8u8`` (see :data:`~resnet.inference.onnx_runtime.ORT_INT8_FORMS`);
- ``openvino``: OpenVINO's CPU plugin on the same ONNX files (``openvino qdq`` for int8), only where
  the optional ``openvino`` package is importable.

ONNX Runtime has no bfloat16 CPU kernels, so ``bf16`` has one engine: ours.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..utils.modes import ENGINES, OURS
from .onnx_runtime import ORT_INT8_FORMS, OrtModel, quantize_onnx_static

ENGINE_LABELS = (OURS, "onnxruntime", *(f"onnxruntime {f}" for f in ORT_INT8_FORMS), "openvino", "openvino qdq")


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def tag(runner: nn.Module, label: str) -> nn.Module:
    """Record on ``runner`` which engine runs it (its ``engine`` attribute)."""
    runner.engine = label
    return runner


def engine_of(runner: object) -> str:
    """The engine that runs ``runner`` (an :func:`optimize` result); a plain module is eager PyTorch."""
    return str(getattr(runner, "engine", "pytorch eager"))


class OrtEngine(nn.Module):
    """An ONNX Runtime session as a module (the session holds the model; the file may go)."""

    def __init__(self, path: Path, threads: int, label: str) -> None:
        super().__init__()
        self.session = OrtModel(path, threads)
        self.engine = label

    def forward(self, x: Tensor) -> Tensor:
        return self.session(x)


class OpenVinoEngine(nn.Module):
    """OpenVINO's CPU plugin compiled from an ONNX file (latency hint, ``threads`` inference threads)."""

    def __init__(self, path: Path, threads: int, label: str) -> None:
        super().__init__()
        import openvino

        # f32 precision: on CPUs with AVX512-BF16 OpenVINO would otherwise run "fp32" models in bf16.
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = openvino.Core().compile_model(str(path), "CPU", config)
        self.engine = label

    def forward(self, x: Tensor) -> Tensor:
        out = self.compiled([x.detach().float().contiguous().numpy()])
        return torch.from_numpy(out[self.compiled.output(0)].copy()).float()


class OnnxFiles:
    """The model exported to ONNX once and quantized once per int8 form, on first use, under ``folder``."""

    def __init__(self, model: nn.Module, folder: Path, example: Tensor, calibration: list[Tensor] | None) -> None:
        self.model, self.folder, self.example, self.calibration = model, folder, example[:1], calibration
        self._paths: dict[str, Path] = {}

    def fp32(self) -> Path:
        if "fp32" not in self._paths:
            from .graphs import onnx_program

            path = self.folder / "model.onnx"
            onnx_program(self.model.eval(), self.example, True, None).save(path, external_data=False)
            self._paths["fp32"] = path
        return self._paths["fp32"]

    def int8(self, form: str) -> Path:
        if form not in self._paths:
            if not self.calibration:
                raise UsageError("ONNX Runtime int8 needs calibration images: pass `calibration`")
            fp32 = self.fp32()
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._paths[form] = quantize_onnx_static(fp32, self.folder / f"model.{form}.onnx", self.calibration, form=form)
        return self._paths[form]


@dataclass(frozen=True)
class Candidate:
    """One engine for one mode: its label, its family (an :data:`ENGINES` name) and how to build it."""

    label: str
    family: str
    build: Callable[[], nn.Module]


def candidates(mode: str, build_ours: Callable[[], nn.Module], files: OnnxFiles, threads: int) -> list[Candidate]:
    """The engines able to run ``mode`` here: ours first (the reference), then ONNX Runtime, then OpenVINO."""
    out = [Candidate(OURS, OURS, lambda: tag(build_ours(), OURS))]
    if mode == "fp32":
        peers = [("onnxruntime", "onnxruntime", OrtEngine, files.fp32), ("openvino", "openvino", OpenVinoEngine, files.fp32)]
    elif mode == "int8":
        peers = [(f"onnxruntime {f}", "onnxruntime", OrtEngine, lambda f=f: files.int8(f)) for f in ORT_INT8_FORMS]
        peers.append(("openvino qdq", "openvino", OpenVinoEngine, lambda: files.int8("qdq")))
    else:
        peers = []
    present = {"onnxruntime": onnxruntime_available(), "openvino": openvino_available()}
    for label, family, cls, path in peers:
        if present[family]:
            out.append(Candidate(label, family, lambda cls=cls, path=path, label=label: cls(path(), threads, label)))
    return out


def check_engine(engine: str, mode: str) -> None:
    """:class:`UsageError` for an unknown ``engine`` or one that cannot run ``mode`` on this machine."""
    if engine not in ENGINES:
        raise UsageError(f"unknown `engine` {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine in ("onnxruntime", "openvino"):
        if mode not in ("fp32", "int8"):
            raise UsageError(f"`engine` {engine} runs modes fp32 and int8, not {mode}; use `engine` ours or auto")
        if not (onnxruntime_available() if engine == "onnxruntime" else openvino_available()):
            raise UsageError(f"`engine` {engine} needs the {engine} package, which is not installed (pip install {engine})")
