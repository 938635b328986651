"""The inference engines ``optimize`` can hand back: ours (fused oneDNN), ONNX Runtime and OpenVINO.

Every engine is an ``nn.Module`` taking float NCHW images (normalised as for the original model) and
returning float32 logits, with an ``engine`` attribute naming what runs it (:data:`ENGINE_LABELS`):

- ``ours``: :func:`resnet.inference.optimize` with ``engine="ours"`` (fused oneDNN float / int8 runners);
- ``onnxruntime``: the model exported to ONNX (dynamic batch) and run by ONNX Runtime's CPU provider,
  float32; for ``int8`` statically quantized by ONNX Runtime (per-channel weights, min/max
  calibration on the same images ours calibrates on) in either of its two forms, ``onnxruntime qdq``
  and ``onnxruntime qoperator-u8u8`` (see :data:`~resnet.inference.onnx_runtime.ORT_INT8_FORMS`);
- ``openvino``: OpenVINO's CPU plugin (:mod:`.openvino`) on the network converted from PyTorch: ``openvino f32``,
  ``openvino bf16`` where the CPU has bfloat16 arithmetic, ``openvino int8`` quantized by NNCF; ``openvino qdq``
  runs ONNX Runtime's QDQ file (a ``resnet bench`` row);
- ``pytorch``: ``torch.export`` and Inductor (fp32, bf16) and torchao's PT2E int8 (:mod:`.pytorch`).

ONNX Runtime has no bfloat16 CPU kernels, so it runs fp32 and int8 only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..utils.modes import ENGINES, OURS
from . import openvino
from .candidate import Candidate
from .onnx_runtime import ORT_INT8_FORMS, OrtModel, quantize_onnx_static
from .openvino import OpenVinoEngine

OPENVINO_LABELS = {"fp32": "openvino f32", "bf16": "openvino bf16", "int8": "openvino int8"}  # int8: NNCF
ENGINE_LABELS = (OURS, "onnxruntime", *(f"onnxruntime {f}" for f in ORT_INT8_FORMS), *OPENVINO_LABELS.values(), "openvino qdq")


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def openvino_available() -> bool:
    return openvino.available()


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


class OnnxFiles:
    """What the upstream engines are built from, each made once on first use: the model exported to ONNX and
    quantized per ONNX Runtime int8 form (files under ``folder``), and the OpenVINO model, float and NNCF int8."""

    def __init__(self, model: nn.Module, folder: Path, example: Tensor, calibration: list[Tensor] | None) -> None:
        self.model, self.folder, self.example, self.calibration = model, folder, example[:1], calibration
        self._paths: dict[str, Path] = {}
        self._openvino: dict[str, object] = {}

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

    def openvino(self, int8: bool = False) -> object:
        """The OpenVINO model converted from PyTorch; ``int8``: quantized by NNCF on the calibration images."""
        key = "int8" if int8 else "float"
        if key not in self._openvino:
            if int8:
                self._openvino[key] = openvino.quantize_nncf(self.openvino(), self.calibration or [])
            else:
                self._openvino[key] = openvino.convert(self.model, self.example)
        return self._openvino[key]


#: Families ``auto`` measures. PyTorch export is measured only when asked for (``engine="pytorch"``): it ran
#: slower than ours and takes tens of seconds to compile, which every first ``auto`` call would pay
#: (figures: docs/results/inference/README.md).
AUTO_FAMILIES = (OURS, "onnxruntime", "openvino")


def candidates(mode: str, build_ours: Callable[[], nn.Module], files: OnnxFiles, threads: int,
               families: tuple[str, ...] = AUTO_FAMILIES) -> list[Candidate]:
    """The engines of ``families`` able to run ``mode`` here: ours first (the reference), then ONNX Runtime,
    OpenVINO and PyTorch export."""
    out = [Candidate(OURS, OURS, lambda: tag(build_ours(), OURS))]
    if mode == "fp32":
        peers = [("onnxruntime", "onnxruntime", lambda: OrtEngine(files.fp32(), threads, "onnxruntime")),
                 (OPENVINO_LABELS["fp32"], "openvino", lambda: OpenVinoEngine(files.openvino(), threads, OPENVINO_LABELS["fp32"]))]
    elif mode == "int8":
        peers = [(f"onnxruntime {f}", "onnxruntime", lambda f=f: OrtEngine(files.int8(f), threads, f"onnxruntime {f}"))
                 for f in ORT_INT8_FORMS]
        peers.append((OPENVINO_LABELS["int8"], "openvino",
                      lambda: OpenVinoEngine(files.openvino(int8=True), threads, OPENVINO_LABELS["int8"])))
    elif openvino.bf16_available():  # bf16: ONNX Runtime has no bfloat16 CPU kernels
        peers = [(OPENVINO_LABELS["bf16"], "openvino",
                  lambda: OpenVinoEngine(files.openvino(), threads, OPENVINO_LABELS["bf16"], precision="bf16"))]
    else:
        peers = []
    present = {"onnxruntime": onnxruntime_available(), "openvino": openvino_available()}
    out.extend(Candidate(label, family, build) for label, family, build in peers if present[family] and family in families)
    if "pytorch" in families:
        from .pytorch import pytorch_candidates

        out.extend(pytorch_candidates(mode, files.model, files.example, files.calibration, threads))
    return out


def check_engine(engine: str, mode: str) -> None:
    """:class:`UsageError` for an unknown ``engine`` or one that cannot run ``mode`` on this machine."""
    if engine not in ENGINES:
        raise UsageError(f"unknown `engine` {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine in ("onnxruntime", "openvino"):
        if not (onnxruntime_available() if engine == "onnxruntime" else openvino_available()):
            raise UsageError(f"`engine` {engine} needs the {engine} package, which is not installed (pip install {engine})")
        if mode == "bf16" and engine == "onnxruntime":
            raise UsageError("`engine` onnxruntime runs modes fp32 and int8, not bf16 (it has no bfloat16 CPU kernels); "
                             "use `engine` openvino, ours or auto")
        if mode == "bf16" and not openvino.bf16_available():
            raise UsageError("`engine` openvino runs bf16 only on CPUs with bfloat16 arithmetic, and this one has none; "
                             "use `engine` ours or auto")
