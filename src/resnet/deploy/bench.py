"""Inference benchmark: our optimisation modes beside their peers, measured side by side in one run.

Peers: torchvision's eager float32 model (NCHW), ONNX Runtime float32 and ONNX Runtime int8
(static quantization, per-channel weights) in both its forms, QDQ and QOperator U8U8, and OpenVINO
(f32, bf16 where the CPU has it, NNCF int8, and int8 from ONNX Runtime's QDQ file), and PyTorch's own
(``torch.export`` compiled by AOTInductor in fp32 and bf16, torchao's PT2E int8). Every runner is built and warmed up first, then
the repeats are interleaved (one call of each runner per round), so a load spike on a shared machine
hits every row alike; the median and the 95th percentile of the per-call latencies are reported. The
same run measures the machine's matrix-product peak (4096² float32 and bf16 ``torch.mm``) so each row
can be given as a share of it.

Each row also shows its top-1 agreement with the float model on the calibration images, the peak
resident memory it holds while it runs (:mod:`.memory`), and, per arithmetic, which
engine ``optimize(..., engine="auto")`` would choose from these figures (:func:`.choice.choose`).
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import ResNetError, UsageError
from ..models.complexity import count_macs
from ..models.data_config import default_input_size
from ..utils.cpu import int8_without_vnni_note
from ..utils.modes import OPTIMIZED_MODES
from ..utils.threads import single_threaded
from ..inference.choice import AGREEMENT_TOLERANCE, Measurement, agreement, choose, time_interleaved
from ..inference import openvino
from ..inference.engines import OnnxFiles, OrtEngine, engine_of, openvino_available
from ..inference.openvino import OpenVinoEngine
from ..inference.ours.fused import onednn_bf16_available
from .memory import PeakRss, base_rss
from ..inference.onnx_runtime import machine_threads
from ..inference.optimize import BF16_FALLBACK_NOTE, optimize

OUR_MODES = OPTIMIZED_MODES
PEERS = ("torchvision eager fp32", "onnxruntime fp32", "onnxruntime int8 qdq", "onnxruntime int8 qoperator-u8u8")
# OpenVINO on the network converted from PyTorch (f32 forced, bf16, NNCF int8) and on ONNX Runtime's QDQ file.
OPENVINO_PEERS = ("openvino f32", "openvino bf16", "openvino int8 nncf", "openvino int8 qdq")
_OPENVINO_NATIVE = {"openvino f32": ("f32", False), "openvino bf16": ("bf16", False), "openvino int8 nncf": ("f32", True)}
# torch.export compiled by AOTInductor (fp32, bf16) and torchao's PT2E int8: compiled once per run (dynamic batch).
PYTORCH_PEERS = ("pytorch fp32", "pytorch bf16", "pytorch int8")
KNOWN_PEERS = (*PEERS, *OPENVINO_PEERS, *PYTORCH_PEERS)
BASELINE = "onnxruntime fp32"
OURS_PREFIX = "resnet.deploy "
AUTO_PREFIX = "optimize() default "  # + mode; the row's label then names the engine auto picked
# The ONNX file each ONNX Runtime / OpenVINO row runs: "fp32" or an int8 form of ONNX Runtime's quantizer.
_PEER_FILES = {"onnxruntime fp32": "fp32", "onnxruntime int8 qdq": "qdq", "onnxruntime int8 qoperator-u8u8": "qoperator-u8u8",
               "openvino int8 qdq": "qdq"}


def default_peers() -> tuple[str, ...]:
    """Every peer this machine can run: OpenVINO's rows only where it is installed (bf16 where the CPU has it)."""
    bf16_ok = openvino.bf16_available()
    return tuple(p for p in KNOWN_PEERS if (p not in OPENVINO_PEERS or openvino_available()) and (p != "openvino bf16" or bf16_ok))


@dataclass
class Row:
    label: str
    group: str  # "peer" or "ours"
    dtype: str  # the arithmetic: fp32 / bf16 / int8
    batch: int
    times: list[float] = field(default_factory=list)  # seconds per call, warm-up excluded
    error: str | None = None
    vs_baseline: float | None = None
    peak_share: float | None = None
    peak_dtype: str | None = None  # which measured matmul peak peak_share is relative to
    agreement: float | None = None  # % top-1 agreement with the float model on the calibration images
    rss_mib: float | None = None  # peak resident memory held while running, over the process before it was built (.memory)
    auto: bool = False  # the engine optimize(..., engine="auto") would choose for this arithmetic and batch

    @property
    def p50(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def p95(self) -> float:
        if not self.times:
            return float("nan")
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def images_per_s(self) -> float:
        return self.batch / self.p50 if self.times else float("nan")

    def as_dict(self) -> dict[str, object]:
        ok = self.error is None and bool(self.times)
        return {
            "label": self.label, "group": self.group, "dtype": self.dtype, "batch": self.batch,
            "images_per_s": round(self.images_per_s, 3) if ok else None,
            "p50_ms": round(self.p50 * 1e3, 3) if ok else None, "p95_ms": round(self.p95 * 1e3, 3) if ok else None,
            "vs_onnxruntime_fp32": None if self.vs_baseline is None else round(self.vs_baseline, 3),
            "peak_share": None if self.peak_share is None else round(self.peak_share, 4), "peak_dtype": self.peak_dtype,
            "repeats": len(self.times), "error": self.error,
            "agreement_pct": None if self.agreement is None else round(self.agreement, 2),
            "peak_rss_growth_mib": None if self.rss_mib is None else round(self.rss_mib, 1), "auto": self.auto,
        }


@dataclass
class BenchResult:
    model: str
    input_size: int
    threads: int
    macs_per_image: int
    peaks_gflops: dict[str, float]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model, "input_size": self.input_size, "threads": self.threads, "macs_per_image": self.macs_per_image,
            "peak_gflops": {k: round(v, 2) for k, v in self.peaks_gflops.items()},
            "rows": [r.as_dict() for r in self.rows], "notes": self.notes, "torch": torch.__version__,
        }


EMULATED_BF16_PEAK_SIZE = 256


def matmul_peak_gflops(dtype: torch.dtype, n: int = 4096, repeats: int = 3) -> float:
    """Best-of-``repeats`` GFLOP/s of an n x n ``torch.mm`` (2 n³ FLOPs), after one warm-up call.

    Without native bfloat16 (AVX2-only CPUs) a bf16 product runs at well under 1 GFLOP/s, so one
    4096² call would take many minutes: there ``n`` is capped at :data:`EMULATED_BF16_PEAK_SIZE`.
    """
    if dtype == torch.bfloat16 and not onednn_bf16_available():
        n = min(n, EMULATED_BF16_PEAK_SIZE)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def pin_threads(threads: int | None = None) -> int:
    """Use one intra-op thread per core this process may run on (and no inter-op pool)."""
    n = threads or machine_threads()
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel region
        torch.set_num_interop_threads(1)
    return n


def torchvision_twin(model: nn.Module) -> tuple[nn.Module, str]:
    """torchvision's own module with ``model``'s weights when torchvision has that network, else ``model``."""
    name = getattr(model, "model_name", None)
    spec = getattr(model, "spec", None)
    try:
        import torchvision.models as tvm

        builder = getattr(tvm, str(name), None) if name else None
        if builder is not None and spec is not None and spec.stem == "imagenet" and not spec.preact and spec.version == "v1.5":
            twin = builder(weights=None, num_classes=spec.num_classes)
            twin.load_state_dict(model.state_dict())
            return twin.eval(), "torchvision"
    except (ImportError, RuntimeError, TypeError, ValueError):
        pass
    return model.eval(), "ours (torchvision-style eager)"


def _safe(build: Callable[[], Callable[[Tensor], Tensor]]) -> tuple[Callable[[Tensor], Tensor] | None, str | None]:
    try:
        return build(), None
    except (ResNetError, RuntimeError, ValueError, NotImplementedError) as err:
        return None, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def run_bench(  # long: the one place the benchmark's options meet
    model: nn.Module,
    *,
    batches: Sequence[int] = (1, 32),
    input_size: int | None = None,
    modes: Sequence[str] = OUR_MODES,
    peers: Sequence[str] | None = None,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    peak_size: int = 4096,
    calibration_images: int = 32,
    progress: Callable[[str], None] | None = None,
    auto: bool = True,
) -> BenchResult:
    """Time ``peers`` (default :func:`default_peers`) and our ``modes`` for each batch size; see the module docstring.

    ``auto`` adds, per mode and batch, the row of ``optimize(model, mode, example_input=batch)`` with its default
    engine (``auto``): the engine it picks (measured once, then cached as for any caller) timed beside the rest."""
    say = progress or (lambda msg: None)
    peers = default_peers() if peers is None else tuple(peers)
    check_bench_options(modes, peers, batches, repeats, warmup)
    spec = getattr(model, "spec", None)
    size = input_size or default_input_size(spec)
    channels = getattr(spec, "in_chans", 3)
    model = model.eval()
    n_threads = pin_threads(threads)
    gen = torch.Generator().manual_seed(0)
    # Speed does not depend on the calibration images; random ones keep the benchmark self-contained.
    calibration = [torch.randn(calibration_images, channels, size, size, generator=gen)]
    with single_threaded():
        macs = count_macs(model, size).macs
    say(f"measuring the matrix-product peak ({peak_size}² fp32 and bf16)")
    peaks = {"fp32": matmul_peak_gflops(torch.float32, peak_size), "bf16": matmul_peak_gflops(torch.bfloat16, peak_size)}
    notes = bench_notes(n_threads, warmup, repeats, peak_size, modes, peers)
    with torch.inference_mode():
        reference = model(calibration[0]).argmax(1)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="resnet-bench-") as tmp:
        files = OnnxFiles(model, Path(tmp), torch.randn(1, channels, size, size, generator=gen), calibration)
        file_errors = _prepare_files(files, peers, say)
        compiled: dict[str, nn.Module] = {}
        if "torchvision eager fp32" in peers and torchvision_twin(model)[1] != "torchvision":
            notes.append(f"torchvision has no {getattr(model, 'model_name', 'such')} network: its eager row runs our module the same way (NCHW, fp32)")
        for batch in batches:
            x = torch.randn(batch, channels, size, size, generator=gen)
            builders = _builders(model, peers, modes, files, file_errors, calibration, x, n_threads, compiled)
            if auto:
                builders += [(f"{AUTO_PREFIX}{m}", m, lambda m=m: optimize(model, m, calibration=calibration, example_input=x))
                             for m in modes]
            runners = [_build_row(label, dtype, batch, build, x, warmup, say) for label, dtype, build in builders]
            for row, fn in runners:
                if fn is not None:
                    row.agreement = agreement(fn, calibration[0], reference)
            _time_rows(runners, x, repeats, say)
            mark_auto([row for row, _ in runners], calibration_images)
            rows.extend(row for row, _ in runners)
            del runners
    _ratios(rows, macs, peaks, bf16_native=onednn_bf16_available())
    name = str(getattr(model, "model_name", type(model).__name__))
    return BenchResult(name, size, n_threads, macs, peaks, rows, notes)


Builder = Callable[[], Callable[[Tensor], Tensor]]


def _prepare_files(files: OnnxFiles, peers: Sequence[str], say: Callable[[str], None]) -> dict[str, str]:
    """Export (and quantize) the ONNX files the peers need before any timing; the error of each that failed."""
    errors: dict[str, str] = {}
    wanted = [p for p in peers if p in _PEER_FILES]
    if wanted:
        say("exporting to ONNX and quantizing with ONNX Runtime")
    for p in wanted:
        form = _PEER_FILES[p]
        try:
            files.fp32() if form == "fp32" else files.int8(form)
        except (ResNetError, RuntimeError, ValueError) as err:
            errors[p] = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    native = [p for p in peers if p in _OPENVINO_NATIVE]
    if native:
        say("converting to OpenVINO (and quantizing with NNCF)")
    for p in native:
        try:
            files.openvino(int8=_OPENVINO_NATIVE[p][1])
        except (ResNetError, RuntimeError, ValueError) as err:
            errors[p] = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return errors


def _builders(
    model: nn.Module, peers: Sequence[str], modes: Sequence[str], files: OnnxFiles, file_errors: dict[str, str],
    calibration: list[Tensor], x: Tensor, n_threads: int, compiled: dict[str, nn.Module],
) -> list[tuple[str, str, Builder | str]]:
    """(label, arithmetic, how to build the runner, or why it cannot be) for every row of one batch size;
    ``compiled`` keeps the PyTorch engines from one batch size to the next."""
    out: list[tuple[str, str, Builder | str]] = []
    for p in peers:
        dtype = "int8" if "int8" in p else "bf16" if "bf16" in p else "fp32"
        if p == "torchvision eager fp32":
            out.append((p, dtype, lambda: torchvision_twin(copy.deepcopy(model))[0]))
        elif p in file_errors:
            out.append((p, dtype, file_errors[p]))
        elif p in PYTORCH_PEERS:
            out.append((p, dtype, lambda p=p: _pytorch_engine(files, p.split()[1], compiled)))
        elif p in _OPENVINO_NATIVE:
            precision, int8 = _OPENVINO_NATIVE[p]
            out.append((p, dtype, lambda p=p, precision=precision, int8=int8: OpenVinoEngine(
                files.openvino(int8=int8), n_threads, p, precision=precision)))
        else:
            cls = OrtEngine if p.startswith("onnxruntime") else OpenVinoEngine
            form = _PEER_FILES[p]
            out.append((p, dtype, lambda cls=cls, form=form, p=p: cls(files.fp32() if form == "fp32" else files.int8(form), n_threads, p)))
    for m in modes:
        out.append((f"{OURS_PREFIX}{m}", m, lambda m=m: optimize(model, m, calibration=calibration, example_input=x, engine="ours")))
    return out


def _pytorch_engine(files: OnnxFiles, arithmetic: str, compiled: dict[str, nn.Module]) -> nn.Module:
    """The PyTorch engine of ``arithmetic``, compiled on first use for the network of ``files``."""
    if arithmetic not in compiled:
        from ..inference.pytorch import compile_engine

        compiled[arithmetic] = compile_engine(files.model, arithmetic, example=files.example, calibration=files.calibration)
    return compiled[arithmetic]


def _build_row(label: str, dtype: str, batch: int, build: Builder | str, x: Tensor, warmup: int,
               say: Callable[[str], None]) -> tuple[Row, Callable[[Tensor], Tensor] | None]:
    """Build one runner, then make its warm-up calls (at least one) while its memory is sampled (see :mod:`.memory`)."""
    group = "ours" if label.startswith(OURS_PREFIX) else "auto" if label.startswith(AUTO_PREFIX) else "peer"
    row = Row(label, group, dtype, batch)
    if isinstance(build, str):
        row.error = build
        return row, None
    say(f"building and warming up {label} (batch {batch})")
    base = base_rss()
    fn, row.error = _safe(build)
    if group == "auto" and fn is not None:
        row.label = f"{label} = {engine_of(fn)}"
    with PeakRss(base) as mem:
        try:
            with torch.inference_mode():
                for _ in range(max(1, warmup) if fn is not None else 0):
                    fn(x)  # type: ignore[misc]
        except (RuntimeError, ValueError, ResNetError) as err:
            row.error = str(err).strip().splitlines()[0]
    row.rss_mib = mem.growth_mib
    return row, (fn if row.error is None else None)


def _time_rows(runners: list[tuple[Row, Callable[[Tensor], Tensor] | None]], x: Tensor, repeats: int,
               say: Callable[[str], None]) -> None:
    live = [(row, fn) for row, fn in runners if fn is not None and row.error is None]
    say(f"timing {len(live)} runners x {repeats} repeats (batch {x.shape[0]})")
    for (row, _), times in zip(live, time_interleaved([fn for _, fn in live], x, repeats)):
        row.times = times


def mark_auto(rows: Sequence[Row], images: int) -> None:
    """Mark, per arithmetic, the row ``optimize(..., engine="auto")`` would choose (ours is the reference)."""
    for dtype in {r.dtype for r in rows}:
        group = [r for r in rows if r.dtype == dtype and r.label != "torchvision eager fp32" and r.group != "auto" and r.times]
        if not group:
            continue
        measured = [Measurement(r.label, r.p50, r.agreement, r.error) for r in group]
        label = choose(measured, images, reference=f"{OURS_PREFIX}{dtype}")
        next(r for r in group if r.label == label).auto = True


def check_bench_options(modes: Sequence[str], peers: Sequence[str], batches: Sequence[int], repeats: int,
                        warmup: int) -> None:
    """:class:`UsageError` for an unknown mode or peer, a batch size below 1, no repeat or a negative warm-up."""
    for m in modes:
        if m not in OUR_MODES:
            raise UsageError(f"unknown mode {m!r}; choose from {', '.join(OUR_MODES)} (or 'all')")
    for p in peers:
        if p not in KNOWN_PEERS:
            raise UsageError(f"unknown peer {p!r}; choose from {', '.join(KNOWN_PEERS)}")
        if p in OPENVINO_PEERS and not openvino_available():
            raise UsageError(f"peer {p!r} needs OpenVINO, which is not installed (pip install openvino)")
    if not batches or any(b < 1 for b in batches):
        raise UsageError(f"batch sizes must be positive integers, got {list(batches)}")
    if repeats < 1 or warmup < 0:
        raise UsageError("`repeats` must be at least 1 and `warmup` non-negative")


def bench_notes(n_threads: int, warmup: int, repeats: int, peak_size: int, modes: Sequence[str],
                peers: Sequence[str]) -> list[str]:
    """The method, and what this CPU changes about the reading (no bf16, no VNNI), printed under the table."""
    notes = [
        f"{n_threads} threads (one per core this process may use); warm-up {max(1, warmup)} call(s) per runner excluded; "
        f"{repeats} interleaved repeats; p50/p95 are per-call latencies of the whole batch",
        "agrees = % of the calibration images on which the row's top-1 equals the float model's; memory = peak resident "
        "memory the runner holds while running its warm-up calls at that batch, over the process before it was built "
        "(same process, sampled every 2 ms, freed heap returned to the system before and after building, so build "
        "transients such as calibration are not counted; shared libraries not counted)",
        "auto = the engine optimize(..., engine='auto') would choose for that arithmetic and batch: the fastest whose "
        f"agreement is within {AGREEMENT_TOLERANCE} points (at least one image) of ours",
        f"peak share = 2 x multiply-adds x images/s over the {peak_size}² matmul peak of the row's arithmetic "
        "(int8 rows: the faster of the fp32 and bf16 peaks; int8 has no torch matmul peak worth the name)",
        "int8 rows calibrate on random images: speed does not depend on them (accuracy: benchmarks/inference_accuracy.py)",
    ]
    if not onednn_bf16_available():
        notes.append(
            f"no native bfloat16 on this CPU: the bf16 matmul figure is an emulated {min(peak_size, EMULATED_BF16_PEAK_SIZE)}² "
            "product, not a peak, so bf16 rows show no share (n/a) and int8 rows are set against the fp32 peak"
        )
        if "bf16" in modes:
            notes.append(BF16_FALLBACK_NOTE)
    vnni_note = int8_without_vnni_note()
    if vnni_note and ("int8" in modes or any("int8" in p for p in peers)):
        notes.append(vnni_note)
    return notes


def _ratios(rows: list[Row], macs: int, peaks: dict[str, float], *, bf16_native: bool = True) -> None:
    # Without native bf16 the bf16 "peak" is an emulated 256² product, not a limit of the hardware:
    # bf16 rows get no share (the table says n/a) and int8 rows are set against the fp32 peak.
    hardware_peaks = peaks if bf16_native else {k: v for k, v in peaks.items() if k != "bf16"}
    for row in rows:
        if row.error is not None or not row.times:
            continue
        base = next((r for r in rows if r.label == BASELINE and r.batch == row.batch and r.times), None)
        row.vs_baseline = base.p50 / row.p50 if base is not None else None
        if row.dtype == "int8":
            row.peak_dtype = max(hardware_peaks, key=hardware_peaks.__getitem__)
        else:
            row.peak_dtype = "fp32" if row.dtype == "fp32" else "bf16"
        if row.peak_dtype not in hardware_peaks:
            row.peak_dtype, row.peak_share = None, None
            continue
        row.peak_share = 2 * macs * row.images_per_s / (hardware_peaks[row.peak_dtype] * 1e9)
