"""``resnet bench``: inference speed of our optimisation modes beside torchvision and ONNX Runtime, one table from one run."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from .common import console, examples, hidden_alias, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="images/s, latency and memory of resnet.deploy modes vs torchvision eager, ONNX Runtime and OpenVINO",
        description=(
            "Benchmark MODEL (a model name for random weights, or a checkpoint) on random inputs. Rows: torchvision "
            "eager fp32, ONNX Runtime fp32 and int8 (static, per-channel; QDQ and QOperator U8U8), OpenVINO fp32 and "
            "int8 where installed, and each resnet.deploy mode; columns: images/s, p50/p95 latency, speed relative to "
            "ONNX Runtime fp32, the share of this machine's matrix-product peak, top-1 agreement with the float model, "
            "peak resident memory, and which engine resnet.deploy.optimize(engine='auto') would choose, all measured "
            "side by side in one run."
        ),
        epilog=examples("resnet bench resnet20 --batch-size 1,128", "resnet bench runs/r20 --optimize int8 --peers ort-int8"),
    )
    p.add_argument("source", metavar="SOURCE", help="model name (e.g. resnet50, resnet20: random weights, timing only), checkpoint or run folder")
    p.add_argument("--batch-size", dest="batch", default="1,32", help="comma-separated batch sizes (default 1,32)")
    hidden_alias(p, "--batch", "batch")
    p.add_argument("--device", default="cpu", choices=("cpu",),
                   help="where the networks run: cpu (bench compares CPU engines: oneDNN, ONNX Runtime, eager PyTorch)")
    p.add_argument("--input-size", type=int, default=None, help="input side in pixels (default 224 ImageNet / 32 CIFAR)")
    p.add_argument("--optimize", default="all", help="our modes: all, none, or a comma-separated list of fp32,bf16,int8 (default all)")
    p.add_argument("--peers", default="all", help="all, none, or a comma-separated list of torchvision,ort-fp32,ort-int8 (QDQ),ort-int8-u8u8 "
                   "(QOperator),openvino-f32,openvino-bf16,openvino-int8 (NNCF),openvino-int8-qdq,pytorch-fp32,pytorch-bf16,"
                   "pytorch-int8 (default all)")
    p.add_argument("--no-auto", dest="auto", action="store_false",
                   help="leave out the rows of optimize() with its default engine (auto: measured, cached, then timed "
                        "beside the rest)")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per runner and batch size, interleaved (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per runner first (default 2)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: one per available core)")
    p.add_argument("--peak-size", type=int, default=4096, help="side of the matmul that measures the peak (default 4096)")
    # --model as in eval and predict; --model-name is the spelling of earlier versions
    p.add_argument("--model", dest="model_name", default=None, help="network name for checkpoints that do not carry one")
    hidden_alias(p, "--model-name", "model_name")
    p.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    p.set_defaults(func=run)


_PEER_ALIASES = {
    "torchvision": "torchvision eager fp32", "eager": "torchvision eager fp32",
    "ort-fp32": "onnxruntime fp32", "onnxruntime-fp32": "onnxruntime fp32",
    "ort-int8": "onnxruntime int8 qdq", "onnxruntime-int8": "onnxruntime int8 qdq", "ort-int8-qdq": "onnxruntime int8 qdq",
    "ort-int8-u8u8": "onnxruntime int8 qoperator-u8u8", "ort-int8-qoperator": "onnxruntime int8 qoperator-u8u8",
    "openvino-f32": "openvino f32", "openvino-fp32": "openvino f32", "openvino-bf16": "openvino bf16",
    "openvino-int8": "openvino int8 nncf", "openvino-int8-nncf": "openvino int8 nncf", "openvino-int8-qdq": "openvino int8 qdq",
    "pytorch-fp32": "pytorch fp32", "pytorch-bf16": "pytorch bf16", "pytorch-int8": "pytorch int8",
}


def parse_batches(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--batch-size takes comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--batch-size takes comma-separated positive integers, got {text!r}")
    return values


def parse_modes(text: str) -> list[str]:
    from ..deploy.bench import OUR_MODES

    if text == "all":
        return list(OUR_MODES)
    if text == "none":
        return []
    modes = [v.strip() for v in text.split(",") if v.strip()]
    bad = [m for m in modes if m not in OUR_MODES]
    if bad:
        raise UsageError(f"--optimize: unknown mode(s) {', '.join(bad)}; choose all, none or from {', '.join(OUR_MODES)}")
    return modes


def parse_peers(text: str) -> list[str]:
    from ..deploy.bench import default_peers

    if text == "all":
        return list(default_peers())
    if text == "none":
        return []
    peers = []
    for v in (v.strip() for v in text.split(",") if v.strip()):
        if v not in _PEER_ALIASES:
            raise UsageError(f"--peers: unknown peer {v!r}; choose all, none or from {', '.join(_PEER_ALIASES)}")
        peers.append(_PEER_ALIASES[v])
    return peers


def run(args: argparse.Namespace) -> int:
    from ..deploy.bench import run_bench
    from ..evaluate.sources import resolve_source

    batches = parse_batches(args.batch)
    modes, peers = parse_modes(args.optimize), parse_peers(args.peers)
    if not modes and not peers:
        raise UsageError("nothing to measure: --optimize none and --peers none")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    if args.warmup < 0:
        raise UsageError(f"--warmup must be 0 or more, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.peak_size < 16:
        raise UsageError(f"--peak-size must be at least 16, got {args.peak_size}")
    if args.input_size is not None and args.input_size < 8:
        raise UsageError(f"--input-size must be at least 8 pixels, got {args.input_size}")
    member = resolve_source(args.source, model_name=args.model_name, random_weights=True)
    progress = None if args.quiet else (lambda msg: print(f"resnet bench: {msg}", file=sys.stderr, flush=True))
    result = run_bench(
        member.model, batches=batches, input_size=args.input_size or member.preprocess.crop_size, modes=modes, peers=peers,
        repeats=args.repeats, warmup=args.warmup, threads=args.threads, peak_size=args.peak_size, progress=progress, auto=args.auto,
    )
    if args.json:
        print_json(result.as_dict())
        return 0
    print_table(result)
    return 0


def print_table(result) -> None:  # noqa: ANN001 - resnet.deploy.bench.BenchResult
    from rich.table import Table

    t = Table(
        title=(
            f"{result.model} at {result.input_size}x{result.input_size}, {result.macs_per_image / 1e9:.3f} G multiply-adds/image, "
            f"{result.threads} threads; matmul peak fp32 {result.peaks_gflops['fp32']:.0f} / bf16 {result.peaks_gflops['bf16']:.0f} GFLOP/s"
        )
    )
    for col in ("batch", "runner", "images/s", "p50 ms", "p95 ms", "vs ORT fp32", "% of peak", "agrees %", "memory MiB", "auto"):
        t.add_column(col, justify="left" if col in ("runner", "auto") else "right")
    for row in result.rows:
        if row.error is not None or not row.times:
            t.add_row(str(row.batch), row.label, "-", "-", "-", "-", f"failed: {row.error or 'not run'}")
            continue
        t.add_row(
            str(row.batch), row.label, f"{row.images_per_s:,.1f}", f"{row.p50 * 1e3:,.2f}", f"{row.p95 * 1e3:,.2f}",
            "-" if row.vs_baseline is None else f"{row.vs_baseline:.2f}x",
            "n/a" if row.peak_share is None else f"{100 * row.peak_share:.1f}% {row.peak_dtype}",
            "-" if row.agreement is None else f"{row.agreement:.1f}", "-" if row.rss_mib is None else f"{row.rss_mib:,.0f}",
            f"<- auto {row.dtype}" if row.auto else "", style="bold" if row.group == "ours" else None,
        )
    out = console()
    out.print(t)
    for note in result.notes:
        out.print(f"- {note}")
