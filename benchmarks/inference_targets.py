"""Issue-28 inference targets, each measured side by side in one ``resnet bench`` run (``resnet.deploy.bench.run_bench``).

    ResNet-50 at batch 1 and 32, each of fp32 / bf16 / int8: ``optimize(model, mode)`` with its default arguments
        (engine auto: it measures, caches, and the bench times the engine it picked) >= 0.95x the fastest peer row
        of that arithmetic (ONNX Runtime, OpenVINO, PyTorch export / torchao)
    absolute, at the default engine: ResNet-50 int8 batch 32 >= 300 images/s, bf16 batch 32 >= 150 images/s,
        int8 batch 1 p50 <= 8 ms (the issue's figures for a 2-core AMX Xeon; other CPUs are reported against them too)
    the share of the measured bf16 matrix-product peak of each default row

Prints each with PASS/MISS and writes docs/results/inference/<stem>.{md,json}. This is a benchmark, not a test:
only the ratios of one run mean anything (every runner is interleaved round by round; see resnet/deploy/bench.py).
The engine choices are measured from a fresh cache (a temporary file), as on a new machine.

    .venv/bin/python benchmarks/inference_targets.py --stem targets-zen4-avx512       # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/inference_targets.py --only resnet50-b1 --repeats 10 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402

import resnet  # noqa: E402
from resnet.deploy.bench import BenchResult, Row, run_bench  # noqa: E402
from resnet.utils.atomic import atomic_write_text  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from time_to_accuracy import cpu_model  # noqa: E402

MODES = ("fp32", "bf16", "int8")
ABSOLUTE = {  # (config, mode): (what, op, threshold)
    ("resnet50-b32", "int8"): ("images/s", ">=", 300.0),
    ("resnet50-b32", "bf16"): ("images/s", ">=", 150.0),
    ("resnet50-b1", "int8"): ("p50 ms", "<=", 8.0),
}


def row(result: BenchResult, label: str) -> Row | None:
    return next((r for r in result.rows if r.label == label and r.error is None and r.times), None)


def check(name: str, value: float, op: str, target: float) -> dict[str, object]:
    ok = value >= target if op == ">=" else value <= target if op == "<=" else value > target
    return {"target": name, "measured": round(value, 3), "op": op, "threshold": target, "met": ok}


def default_row(result: BenchResult, mode: str) -> Row | None:
    return next((r for r in result.rows if r.group == "auto" and r.dtype == mode and r.error is None and r.times), None)


def fastest_peer(result: BenchResult, mode: str) -> Row | None:
    peers = [r for r in result.rows if r.group == "peer" and r.dtype == mode and r.error is None and r.times
             and not r.label.startswith("torchvision")]
    return max(peers, key=lambda r: r.images_per_s, default=None)


def issue28_checks(key: str, result: BenchResult) -> list[dict[str, object]]:
    """Per arithmetic: the default row against the fastest peer, the absolute figures, the bf16 peak share."""
    out: list[dict[str, object]] = []
    for mode in MODES:
        ours, peer = default_row(result, mode), fastest_peer(result, mode)
        if ours is None:
            continue
        if peer is not None:
            out.append(check(f"{key} {mode}: optimize() default ({ours.label.split(' = ')[-1]}) / fastest peer ({peer.label})",
                             ours.images_per_s / peer.images_per_s, ">=", 0.95))
        if (key, mode) in ABSOLUTE:
            what, op, threshold = ABSOLUTE[(key, mode)]
            value = ours.images_per_s if what == "images/s" else ours.p50 * 1e3
            out.append(check(f"{key} {mode}: optimize() default, {what} (AMX figure)", value, op, threshold))
        if "bf16" in result.peaks_gflops:
            share = 2 * result.macs_per_image * ours.images_per_s / (result.peaks_gflops["bf16"] * 1e9)
            out.append({"target": f"{key} {mode}: optimize() default, share of the bf16 matmul peak", "measured": round(share, 3),
                        "op": "", "threshold": None, "met": None})
    return out


def table_lines(key: str, result: BenchResult) -> list[str]:
    """One configuration's rows as a Markdown table, its notes under it."""
    lines = [
        "",
        f"## {key}: {result.model} at {result.input_size} px ({result.macs_per_image / 1e9:.3f} G multiply-adds/image), "
        f"matmul peak fp32 {result.peaks_gflops['fp32']:.0f} / bf16 {result.peaks_gflops['bf16']:.0f} GFLOP/s",
        "",
        "| runner | batch | images/s | p50 ms | p95 ms | vs ORT fp32 | % of peak | agrees % | memory MiB | auto |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result.rows:
        if r.error is not None or not r.times:
            lines.append(f"| {r.label} | {r.batch} | failed: {r.error} | | | | | | | |")
            continue
        share = "" if r.peak_share is None else f"{100 * r.peak_share:.1f}% {r.peak_dtype}"
        vs = "" if r.vs_baseline is None else f"{r.vs_baseline:.2f}x"
        agree = "" if r.agreement is None else f"{r.agreement:.1f}"
        mem = "" if r.rss_mib is None else f"{r.rss_mib:,.0f}"
        lines.append(f"| {r.label} | {r.batch} | {r.images_per_s:,.1f} | {r.p50 * 1e3:,.2f} | {r.p95 * 1e3:,.2f} | {vs} | {share} | "
                     f"{agree} | {mem} | {'auto ' + r.dtype if r.auto else ''} |")
    return lines + [f"- {n}" for n in result.notes]


def main() -> int:  # long: one report from several configurations
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="comma-separated subset of resnet50-b1, resnet50-b32")
    ap.add_argument("--stem", default="targets", help="file name stem under docs/results/inference/ (default: targets)")
    ap.add_argument("--repeats", type=int, default=None, help="override the per-configuration repeats")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    configs = {"resnet50-b1": ("resnet50", 1, 224, 30), "resnet50-b32": ("resnet50", 32, 224, 6)}
    results: dict[str, BenchResult] = {}
    checks: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["RESNET_ENGINE_CACHE"] = str(Path(cache) / "engines.json")  # auto measures as on a new machine
        for key, (name, batch, size, repeats) in configs.items():
            if args.only and key not in args.only.split(","):
                continue
            start = time.perf_counter()
            result = run_bench(resnet.create_model(name), batches=[batch], input_size=size, repeats=args.repeats or repeats,
                               warmup=2, progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
            results[key] = result
            print(f"{key}: measured in {time.perf_counter() - start:.0f} s", file=sys.stderr)
            checks += issue28_checks(key, result)

    lines = [
        "# Inference targets (issue 28)",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f} at the end, "
        f"torch {torch.__version__}. Produced by `benchmarks/inference_targets.py`; every table is one `run_bench` call "
        "with interleaved repeats, the engine choices measured from a fresh cache.",
        "",
        "| target | measured | needed | met |",
        "|---|---:|---:|---|",
    ]
    for c in checks:
        needed = "" if c["threshold"] is None else f"{c['op']} {c['threshold']}"
        met = "" if c["met"] is None else "PASS" if c["met"] else "MISS"
        lines.append(f"| {c['target']} | {c['measured']:.2f} | {needed} | {met} |")
    for key, result in results.items():
        lines += table_lines(key, result)
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        out = REPO / "docs" / "results" / "inference"
        atomic_write_text(out / f"{args.stem}.md", text)
        payload = {"checks": checks, "results": {k: v.as_dict() for k, v in results.items()}}
        atomic_write_text(out / f"{args.stem}.json", json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out / args.stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
