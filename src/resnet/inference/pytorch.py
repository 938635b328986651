"""The PyTorch-native engine: the network exported by ``torch.export`` and compiled ahead of time by
Inductor (AOTInductor, with freezing) into a ``.pt2`` package that runs without Python tracing.

- ``fp32``: the float network as it is; ``bf16``: the network converted to bfloat16 before export (input
  cast in, logits cast out to float32);
- ``int8``: TorchAO's PT2E flow, ``prepare_pt2e`` / ``convert_pt2e`` with ``X86InductorQuantizer``
  (static, per-channel weights, uint8 activations) calibrated on the given images, which Inductor lowers
  to oneDNN's int8 convolutions; ``int8-mixed-bf16`` runs the same quantized graph under bf16 autocast
  (the float parts between the int8 convolutions in bf16).

Every engine takes float NCHW images (normalised as for the original model) of the shape it was compiled
for, any batch size (the batch dimension is dynamic), and returns float32 logits; its ``engine`` attribute
names it (:data:`LABELS`). Compiling costs tens of seconds (a C++ compiler runs), so
:func:`pytorch_candidates` compiles only when a candidate is built. :func:`save_package` copies the compiled
package, whose AOTInductor metadata carries the caller's metadata (classes, preprocessing, model name) and
the arithmetic; :func:`load_package` reads it back without compiling.

PyTorch 2.14 has no public name for the two AOTInductor entry points it documents:
``torch._inductor.aoti_compile_and_package`` and ``torch._inductor.aoti_load_package`` are used.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import shutil
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch._inductor  # AOTInductor: aoti_compile_and_package, aoti_load_package
from torch import Tensor, nn

from ..errors import ResNetError, UsageError
from ..utils.atomic import atomic_path
from .candidate import Candidate
from .graphs import MIN_DYNAMIC_SIDE, dynamic_dims
from .torchao_import import torchao_module

FAMILY = "pytorch"
INT8_MIXED_BF16 = "int8-mixed-bf16"  # an arithmetic, not a mode: int8 convolutions, bf16 in between
ARITHMETICS = ("fp32", "bf16", "int8", INT8_MIXED_BF16)
LABELS = {
    "fp32": "pytorch inductor",
    "bf16": "pytorch inductor bf16",
    "int8": "pytorch torchao int8",
    INT8_MIXED_BF16: "pytorch torchao int8-mixed-bf16",
}
META_PREFIX = "resnet."  # our keys in the package's metadata, beside AOTInductor's own (AOTI_*)
# Loggers that narrate compilation on stderr (no CUDA runtime found, ...): quiet while we compile.
_NOISY_LOGGERS = (
    "torch.utils.cpp_extension", "torch._inductor", "torch._dynamo", "torch.export",
    "torch.fx.experimental.symbolic_shapes",
)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Hold back the exporter's and compiler's stdout, warnings and log lines (kept for an error message)."""
    log = io.StringIO()
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield log
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _Bf16(nn.Module):
    """The network in bfloat16: float input cast in, float32 logits out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval().to(torch.bfloat16)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.to(torch.bfloat16)).float()


class _Autocast(nn.Module):
    """A (quantized) graph under bf16 autocast, float32 logits out (TorchAO's int8-mixed-bf16)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(x).float()


def _batches(calibration: Tensor | Iterable[Tensor] | None) -> list[Tensor]:
    if calibration is None:
        raise UsageError("the PyTorch int8 engine needs calibration images: "
                         "pass `calibration` (normalised float [N, C, H, W])")
    if isinstance(calibration, Tensor):
        batches = list(calibration.split(32))
    else:  # (images, labels) pairs are accepted
        batches = [b if isinstance(b, Tensor) else b[0] for b in calibration]
    if not batches or any(b.ndim != 4 or not b.is_floating_point() for b in batches):
        raise UsageError("calibration must be normalised float images [N, C, H, W], at least one")
    return [b.float() for b in batches]


def _dynamic_example(example: Tensor, dynamic_size: bool = False) -> tuple[Tensor, tuple[dict[int, object]]]:
    """An example of batch 2 at least (a batch of 1 would be specialised) and the dynamic dimensions: the batch,
    and with ``dynamic_size`` the height and width (from :data:`MIN_DYNAMIC_SIDE` pixels)."""
    if example.ndim != 4 or not example.is_floating_point():
        raise UsageError(f"the example input must be float images [N, C, H, W], "
                         f"got {example.dtype} {tuple(example.shape)}")
    example = example.float()
    if len(example) < 2:
        example = example.expand(2, *example.shape[1:]).contiguous()
    return example[:2], (dynamic_dims(True, dynamic_size),)


def _quantized(model: nn.Module, example: Tensor, dims: tuple, calibration: list[Tensor]) -> nn.Module:
    """``model`` through TorchAO's PT2E flow: annotated by the x86 Inductor quantizer, calibrated, converted."""
    pt2e = torchao_module("torchao.quantization.pt2e.quantize_pt2e", "the PyTorch int8 engine")
    x86 = torchao_module("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", "the PyTorch int8 engine")
    # strict=True: the quantizer finds conv / add / relu patterns by the source of each node, which only strict
    # export records per call (non-strict export groups every call of a reused nn.ReLU into one partition).
    graph = torch.export.export(model, (example,), dynamic_shapes=dims, strict=True).module()
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = pt2e.prepare_pt2e(graph, quantizer)
    for batch in calibration:
        prepared(batch)
    return pt2e.convert_pt2e(prepared)


def _program(  # noqa: ANN202 - torch.export.ExportedProgram
    model: nn.Module, arithmetic: str, example: Tensor, calibration: Tensor | Iterable[Tensor] | None,
    dynamic_size: bool = False,
):
    """The exported program that Inductor compiles for ``arithmetic``."""
    example, dims = _dynamic_example(example, dynamic_size)
    batches = _batches(calibration) if arithmetic.startswith("int8") else []
    model = model.eval()
    if arithmetic == "fp32":
        net: nn.Module = model
    elif arithmetic == "bf16":
        net = _Bf16(model)
    else:
        net = _quantized(model, example, dims, batches)
        net = _Autocast(net) if arithmetic == INT8_MIXED_BF16 else net
    return torch.export.export(net, (example,), dynamic_shapes=dims)


def _package_metadata(arithmetic: str, example: Tensor, metadata: dict[str, str] | None, dynamic_size: bool) -> dict[str, str]:
    meta = {f"{META_PREFIX}{k}": str(v) for k, v in (metadata or {}).items()}
    meta[f"{META_PREFIX}arithmetic"] = arithmetic
    meta[f"{META_PREFIX}engine"] = LABELS[arithmetic]
    meta[f"{META_PREFIX}input_shape"] = ",".join(str(s) for s in example.shape[1:])
    meta[f"{META_PREFIX}dynamic_size"] = "true" if dynamic_size else "false"
    return meta


class PyTorchEngine(nn.Module):
    """A compiled ``.pt2`` package as a module (float NCHW in, float32 logits out, any batch size).

    ``metadata`` holds what the package was compiled with (our keys, without their prefix); ``package`` is its
    file, kept while the engine lives (in a temporary folder the engine owns when it compiled it itself)."""

    def __init__(self, package: Path, owned: Path | None = None) -> None:
        super().__init__()
        self.package = Path(package)
        if owned is not None:  # the folder goes with the engine (quietly: no ResourceWarning at exit)
            weakref.finalize(self, shutil.rmtree, owned, True)
        try:
            with _quiet():
                self.runner = torch._inductor.aoti_load_package(str(self.package))
                raw = self.runner.get_metadata()
        except Exception as err:  # noqa: BLE001 - the loader raises RuntimeError or worse for a bad file
            raise ResNetError(f"cannot load the PyTorch package {self.package.name}: {_first_line(err)}") from None
        self.metadata = {k[len(META_PREFIX):]: v for k, v in raw.items() if k.startswith(META_PREFIX)}
        if "arithmetic" not in self.metadata:
            raise ResNetError(f"{self.package.name} is a PyTorch package but not one this library wrote "
                              "(no arithmetic in its metadata)")
        self.engine = self.metadata.get("engine", LABELS.get(self.metadata["arithmetic"], FAMILY))
        self.input_shape = tuple(int(s) for s in self.metadata["input_shape"].split(","))
        self.dynamic_size = self.metadata.get("dynamic_size") == "true"

    def _fits(self, x: object) -> bool:
        if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
            return False
        if self.dynamic_size:
            return x.shape[1] == self.input_shape[0] and min(x.shape[2:]) >= MIN_DYNAMIC_SIDE
        return tuple(x.shape[1:]) == self.input_shape

    def forward(self, x: Tensor) -> Tensor:
        if not self._fits(x):
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            shape = (f"{self.input_shape[0]}, H, W] (H, W >= {MIN_DYNAMIC_SIDE})" if self.dynamic_size
                     else "x".join(str(s) for s in self.input_shape) + "]")
            raise UsageError(f"the {self.engine} engine takes float images [N, {shape}, got {got}")
        if len(x) == 0:
            raise UsageError(f"the {self.engine} engine needs at least one image, got an empty batch")
        return self.runner(x.float().contiguous()).float()


def compile_engine(
    model: nn.Module,
    arithmetic: str,
    *,
    example: Tensor,
    calibration: Tensor | Iterable[Tensor] | None = None,
    metadata: dict[str, str] | None = None,
    dynamic_size: bool = False,
) -> PyTorchEngine:
    """``model`` exported and compiled by AOTInductor (freezing on) for images of ``example``'s shape, any batch size
    (with ``dynamic_size``, any height and width too, for fully convolutional networks).

    ``arithmetic`` is one of :data:`ARITHMETICS`; the int8 ones calibrate on ``calibration`` (normalised float images,
    a tensor or an iterable of batches). ``metadata`` (strings) goes into the package (see :func:`save_package`).
    Tens of seconds: a C++ compiler runs."""
    if arithmetic not in ARITHMETICS:
        raise UsageError(f"unknown arithmetic {arithmetic!r} for the PyTorch engine; "
                         f"choose one of {', '.join(ARITHMETICS)}")
    owned = Path(tempfile.mkdtemp(prefix="resnet-pt2-"))
    package = owned / "model.pt2"
    try:
        with _quiet(), torch.no_grad():
            program = _program(model, arithmetic, example, calibration, dynamic_size)
            meta = _package_metadata(arithmetic, example, metadata, dynamic_size)
            configs = {"freezing": True, "aot_inductor.metadata": meta}
            torch._inductor.aoti_compile_and_package(program, package_path=str(package), inductor_configs=configs)
    except ResNetError:
        shutil.rmtree(owned, ignore_errors=True)
        raise
    except Exception as err:  # noqa: BLE001 - export, quantization and compilation raise many types
        shutil.rmtree(owned, ignore_errors=True)
        raise ResNetError(f"the PyTorch {arithmetic} engine failed to compile: {_first_line(err)}") from None
    return PyTorchEngine(package, owned)


def save_package(engine: PyTorchEngine, path: str | Path) -> Path:
    """Write ``engine``'s compiled package to ``path`` (atomically; ``.pt2`` by convention)."""
    if not isinstance(engine, PyTorchEngine):
        raise UsageError(f"only a PyTorch engine has a package to save, not {type(engine).__name__}")
    with atomic_path(path) as tmp:
        shutil.copyfile(engine.package, tmp)
    return Path(path)


def load_package(path: str | Path) -> PyTorchEngine:
    """A package :func:`save_package` wrote, ready to run (no compilation); its ``metadata`` says what it holds."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no PyTorch package at {path}")
    return PyTorchEngine(path)


def pytorch_candidates(
    mode: str, model: nn.Module, example: Tensor, calibration: Tensor | Iterable[Tensor] | None, threads: int
) -> list[Candidate]:
    """The PyTorch engines for ``mode`` (fp32, bf16 or int8; int8 has two: plain and mixed with bf16), each
    compiled only when built. They run on PyTorch's intra-op threads; ``threads`` is what the other engines
    are given, recorded here for symmetry (set it with ``torch.set_num_threads``)."""
    del threads  # AOTInductor's OpenMP loops use torch.get_num_threads() at run time
    arithmetics = {"fp32": ["fp32"], "bf16": ["bf16"], "int8": ["int8", INT8_MIXED_BF16]}.get(mode, [])
    return [
        Candidate(LABELS[a], FAMILY, lambda a=a: compile_engine(model, a, example=example, calibration=calibration))
        for a in arithmetics
    ]
