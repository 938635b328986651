"""Issue-6 and issue-19 speed targets, each measured side by side in one ``resnet bench`` run (``resnet.deploy.bench.run_bench``).

    ResNet-50, batch 32, 224 px: our fp32 >= 1.0x ONNX Runtime fp32; our best mode >= 2.0x ONNX Runtime fp32
                                 and ahead of ONNX Runtime int8 (static, per-channel)
    ResNet-50, batch 1:          our best mode's p50 latency <= 0.5x ONNX Runtime fp32's
    ResNet-20 (CIFAR), batch 256: our best mode >= 2.0x torchvision-style eager fp32
    issue 19, ResNet-50 at batch 32 and 1: optimize(..., "fp32", engine="auto") >= 1.0x ONNX Runtime fp32 and
                                 optimize(..., "int8", engine="auto") >= 1.0x ONNX Runtime int8, QDQ and QOperator
                                 U8U8 alike (the rows the bench marks "auto"); with --auto, optimize(engine="auto")
                                 itself is also run (fresh cache) and its pick reported

Each row of the tables also gives top-1 agreement with the float model and peak resident memory.

Prints each ratio with PASS/MISS and writes docs/results/inference/targets.{md,json}. This is a
benchmark, not a test: on a shared machine single runs drift, so only the ratios of one run mean
anything (every runner is interleaved round by round; see resnet/deploy/bench.py).

    .venv/bin/python benchmarks/inference_targets.py                  # all three, about 5 minutes on 2 cores
    .venv/bin/python benchmarks/inference_targets.py --only resnet20 --repeats 5 --no-write
    .venv/bin/python benchmarks/inference_targets.py --only resnet50-b32,resnet50-b1 --auto --stem targets-zen4-avx512
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

OURS = ("resnet.deploy fp32", "resnet.deploy bf16", "resnet.deploy int8")


def row(result: BenchResult, label: str) -> Row | None:
    return next((r for r in result.rows if r.label == label and r.error is None and r.times), None)


def best(result: BenchResult, key) -> Row:  # noqa: ANN001
    rows = [r for r in (row(result, label) for label in OURS) if r is not None]
    return max(rows, key=key)


def check(name: str, value: float, op: str, target: float) -> dict[str, object]:
    ok = value >= target if op == ">=" else value <= target if op == "<=" else value > target
    return {"target": name, "measured": round(value, 3), "op": op, "threshold": target, "met": ok}


def issue19_checks(key: str, result: BenchResult) -> list[dict[str, object]]:
    """The engine auto marks, per arithmetic, against ONNX Runtime fp32 and both int8 forms (higher images/s is better)."""
    out: list[dict[str, object]] = []
    auto = {r.dtype: r for r in result.rows if r.auto}
    ort = row(result, "onnxruntime fp32")
    if "fp32" in auto and ort:
        out.append(check(f"{key}: auto fp32 ({auto['fp32'].label}) / ORT fp32", auto["fp32"].images_per_s / ort.images_per_s, ">=", 1.0))
    for peer in ("onnxruntime int8 qdq", "onnxruntime int8 qoperator-u8u8"):
        r = row(result, peer)
        if "int8" in auto and r:
            out.append(check(f"{key}: auto int8 ({auto['int8'].label}) / {peer}", auto["int8"].images_per_s / r.images_per_s, ">=", 1.0))
    return out


def auto_picks(model_name: str, batch: int, size: int) -> list[str]:
    """What optimize(..., engine="auto") itself picks, measured from a fresh cache (fp32 and int8)."""
    from resnet.deploy import optimize

    model = resnet.create_model(model_name).eval()
    gen = torch.Generator().manual_seed(1)
    x, calibration = torch.randn(batch, 3, size, size, generator=gen), torch.randn(32, 3, size, size, generator=gen)
    lines = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["RESNET_CACHE_DIR"] = cache
        for mode in ("fp32", "int8"):
            start = time.perf_counter()
            fast = optimize(model, mode, engine="auto", example_input=x, calibration=calibration)
            seconds = time.perf_counter() - start
            entries = json.loads((Path(cache) / "engines.json").read_text()).values()
            entry = next(e for e in entries if e["key"]["mode"] == mode)
            measured = ", ".join(f"{m['label']} {batch / m['seconds']:.1f}/s agrees {m['agreement']:.0f}%" if m["seconds"] else
                                 f"{m['label']} failed" for m in entry["measured"])
            lines.append(f"{model_name} batch {batch} {mode}: optimize(engine='auto') chose **{fast.engine}** in {seconds:.0f} s "
                         f"(its own measurement: {measured})")
    os.environ.pop("RESNET_CACHE_DIR", None)
    return lines


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
    ap.add_argument("--only", default=None, help="comma-separated subset of resnet50-b32, resnet50-b1, resnet20")
    ap.add_argument("--auto", action="store_true", help="also run optimize(engine='auto') for ResNet-50 and report its pick")
    ap.add_argument("--stem", default="targets", help="file name stem under docs/results/inference/ (default: targets)")
    ap.add_argument("--repeats", type=int, default=None, help="override the per-configuration repeats")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    configs = {
        "resnet50-b32": ("resnet50", 32, 224, 8),
        "resnet50-b1": ("resnet50", 1, 224, 40),
        "resnet20": ("resnet20", 256, 32, 15),
    }
    results: dict[str, BenchResult] = {}
    checks: list[dict[str, object]] = []
    for key, (name, batch, size, repeats) in configs.items():
        if args.only and key not in args.only.split(","):
            continue
        start = time.perf_counter()
        model = resnet.create_model(name)
        result = run_bench(
            model, batches=[batch], input_size=size, repeats=args.repeats or repeats, warmup=2,
            progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True),
        )
        results[key] = result
        print(f"{key}: measured in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        ort = row(result, "onnxruntime fp32")
        ort8 = row(result, "onnxruntime int8 qdq")
        eager = row(result, "torchvision eager fp32")
        if key == "resnet50-b32" and ort and ort8:
            fp32 = row(result, "resnet.deploy fp32")
            top = best(result, key=lambda r: r.images_per_s)
            if fp32:
                checks.append(check("ResNet-50 b32: our fp32 / ORT fp32 (images/s)", fp32.images_per_s / ort.images_per_s, ">=", 1.0))
            checks.append(check(f"ResNet-50 b32: best mode ({top.label}) / ORT fp32", top.images_per_s / ort.images_per_s, ">=", 2.0))
            checks.append(check(f"ResNet-50 b32: best mode ({top.label}) / ORT int8", top.images_per_s / ort8.images_per_s, ">", 1.0))
        if key == "resnet50-b1" and ort:
            top = best(result, key=lambda r: -r.p50)
            checks.append(check(f"ResNet-50 b1: best mode ({top.label}) p50 / ORT fp32 p50", top.p50 / ort.p50, "<=", 0.5))
            if ort8:
                checks.append(check(f"ResNet-50 b1: best mode ({top.label}) p50 / ORT int8 p50 (context)", top.p50 / ort8.p50, "<=", 1.0))
        if key == "resnet20" and eager:
            top = best(result, key=lambda r: r.images_per_s)
            checks.append(check(f"ResNet-20 b256: best mode ({top.label}) / eager fp32", top.images_per_s / eager.images_per_s, ">=", 2.0))
        if key.startswith("resnet50"):
            checks += issue19_checks(key, result)
    picks: list[str] = []
    if args.auto:
        for key in results:
            if key.startswith("resnet50"):
                picks += auto_picks(*configs[key][:3])

    lines = [
        "# Inference speed targets (issues 6 and 19)",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f} at the end, torch {torch.__version__}. "
        "Produced by `benchmarks/inference_targets.py`; every table is one `run_bench` call with interleaved repeats. "
        "The machine is shared with other jobs, so absolute figures drift; the ratios within one table are what count.",
        "",
        "| target | measured | needed | met |",
        "|---|---:|---:|---|",
    ]
    for c in checks:
        lines.append(f"| {c['target']} | {c['measured']:.2f} | {c['op']} {c['threshold']} | {'yes' if c['met'] else 'NO'} |")
    lines += ["", *(f"- {p}" for p in picks)]
    for key, result in results.items():
        lines += table_lines(key, result)
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        out = REPO / "docs" / "results" / "inference"
        atomic_write_text(out / f"{args.stem}.md", text)
        payload = {"checks": checks, "auto_picks": picks, "results": {k: v.as_dict() for k, v in results.items()}}
        atomic_write_text(out / f"{args.stem}.json", json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out / args.stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
