"""Evaluation throughput: ResNet-56 over the 10,000 CIFAR-10 test images with the ``center`` protocol.

Runs the same ``resnet.evaluate.evaluate`` path as ``resnet eval`` once per execution mode and
prints images/s, the achieved GFLOP/s (FLOPs = 2 x multiply-adds from ``count_macs``) and that as a
fraction of this machine's matrix-product peak, measured in the same run (4096x4096 fp32 and bf16
``torch.mm``). The top-1 error of each mode shows which modes are exact: with the akamaster
ResNet-56 weights present it must read 6.61 % for the exact fp32 modes.

    .venv/bin/python benchmarks/eval_throughput.py                      # all modes
    .venv/bin/python benchmarks/eval_throughput.py --modes eager channels_last --limit 2000
    .venv/bin/python benchmarks/eval_throughput.py --compile --json

Shared or throttled machines make single runs noisy: compare the ratios printed by one run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from resnet import create_model  # noqa: E402
from resnet.models.complexity import count_macs  # noqa: E402
from resnet.evaluate import Center, evaluate  # noqa: E402
from resnet.evaluate.data import ArrayEvalData, FileEvalData  # noqa: E402
from resnet.data.scan import scan_folder, split_folder  # noqa: E402
from resnet.evaluate.sources import resolve_source  # noqa: E402
from resnet.inference.load import CIFAR10_CLASSES  # noqa: E402
from resnet.inference.network import Network  # noqa: E402

SHARED = [os.environ.get("RESNET_SHARED_DIR"), str(REPO.parent / "shared"), "/work/shared"]
MODES = ("eager", "channels_last", "channels_last_bf16", "compile", "deploy_fp32", "deploy_bf16")


def matmul_gflops(dtype: torch.dtype, n: int = 4096, reps: int = 5) -> float:
    """Best-of-``reps`` GFLOP/s of an n x n matrix product (2 n^3 FLOPs): the practical peak."""
    from resnet.deploy.bench import EMULATED_BF16_PEAK_SIZE
    from resnet.inference.ours.fused import onednn_bf16_available

    if dtype == torch.bfloat16 and not onednn_bf16_available():
        n = min(n, EMULATED_BF16_PEAK_SIZE)  # emulated bf16 (AVX2-only CPUs): a 4096² product takes minutes
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def load_cifar_test(limit: int | None) -> tuple[ArrayEvalData, str]:
    for base in SHARED:
        root = Path(base) / "data" / "cifar10" if base else None
        if root is not None and (root / "test").is_dir():
            scan = scan_folder(split_folder(root, "test", fallback=False, classes_at_root=True))
            classes, samples = scan.classes, scan.samples
            samples.sort(key=lambda s: s[0].stem)  # the file names are the official test-set indices
            files = FileEvalData(samples[:limit] if limit else samples, classes, "cifar10 test")
            images, labels = [], []
            for x, y in files.batches(1000):
                images.append(x)
                labels.append(y)
            return ArrayEvalData(torch.cat(images), torch.cat(labels), classes, f"cifar10 test ({root})"), str(root)
    n = limit or 10_000
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return ArrayEvalData(images, torch.randint(0, 10, (n,), generator=g), CIFAR10_CLASSES, "random 32x32 images"), "synthetic"


def base_member() -> Network:
    for base in SHARED:
        folder = Path(base) / "data" / "reference-weights" / "akamaster-cifar10" if base else None
        if folder is not None and folder.is_dir():
            found = sorted(folder.glob("resnet56-*.th"))
            if found:
                return resolve_source(str(found[0]))
    member = resolve_source("resnet56")
    member.name = "resnet56 (random weights)"
    return member


def mode_forward(mode: str, model: nn.Module, sample: Tensor) -> Callable[[Tensor], Tensor]:
    model = copy.deepcopy(model).eval()
    if mode == "eager":
        return model
    if mode in ("deploy_fp32", "deploy_bf16"):
        from resnet.deploy import optimize  # type: ignore[attr-defined]

        return optimize(model, mode.split("_")[1], calibration=sample)
    model = model.to(memory_format=torch.channels_last)
    if mode == "compile":
        model = torch.compile(model)  # type: ignore[assignment]
    bf16 = mode == "channels_last_bf16"

    def forward(x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x).float()
        return model(x)

    return forward


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=None, choices=MODES, help="default: all but compile (plus deploy_* when resnet.deploy has optimize)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on few cores)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--limit", type=int, default=None, help="first N test images (default all 10,000)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    modes = list(args.modes or ("eager", "channels_last", "channels_last_bf16"))
    if args.modes is None:
        try:
            from resnet.deploy import optimize  # noqa: F401
        except ImportError:
            pass
        else:
            modes += ["deploy_fp32", "deploy_bf16"]
        if args.compile:
            modes.append("compile")

    data, where = load_cifar_test(args.limit)
    member = base_member()
    macs = count_macs(create_model("resnet56"), 32).macs
    flops = 2 * macs
    from resnet.evaluate.preprocess import network_input

    calibration = network_input(data.images[:64], member.preprocess)

    # The peak is sampled before every mode and the best sample kept, so that other work on a shared
    # machine lowers the fraction reported rather than inflating it.
    peak = {"fp32": 0.0, "bf16": 0.0}

    def sample_peak() -> None:
        for dtype, key in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            peak[key] = max(peak[key], matmul_gflops(dtype))

    rows = []
    for mode in modes:
        sample_peak()
        try:
            forward = mode_forward(mode, member.model, calibration)
        except Exception as err:  # a mode this build or CPU lacks is reported, not fatal
            rows.append({"mode": mode, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"})
            continue
        m = Network(member.name, member.source, member.kind, member.model, member.preprocess, member.classes, forward=forward, optimized=member.model)
        evaluate([m], ArrayEvalData(data.images[:args.batch_size], data.labels[:args.batch_size], data.classes, "warm-up"), Center(), batch_size=args.batch_size)
        report = evaluate([m], data, Center(), batch_size=args.batch_size)
        r = report.members[0]
        dtype = "bf16" if "bf16" in mode else "fp32"
        rows.append(
            {
                "mode": mode,
                "images_per_s": round(r.images_per_s, 1),
                "top1_err": round(r.metrics.top1_error, 2),
                "gflops": round(r.images_per_s * flops / 1e9, 1),
                "peak_dtype": dtype,
            }
        )
    sample_peak()
    for row in rows:
        if "gflops" in row:
            row["fraction_of_peak"] = round(row["gflops"] / peak[row["peak_dtype"]], 3)
    result = {
        "model": member.name,
        "data": data.description,
        "images": len(data),
        "batch_size": args.batch_size,
        "macs_per_image": macs,
        "matmul_peak_gflops": {k: round(v, 1) for k, v in peak.items()},
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "modes": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']} on {result['data']}: {len(data)} images, batch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"multiply-adds/image {macs / 1e6:.2f} M; matmul 4096^2 peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    print(f"{'mode':<20}{'images/s':>10}{'top-1 err %':>13}{'GFLOP/s':>10}{'of peak':>9}")
    for row in rows:
        if "error" in row:
            print(f"{row['mode']:<20}  not available: {row['error']}")
            continue
        print(
            f"{row['mode']:<20}{row['images_per_s']:>10.0f}{row['top1_err']:>13.2f}{row['gflops']:>10.1f}"
            f"{100 * row['fraction_of_peak']:>7.1f}% ({row['peak_dtype']})"
        )
    print(f"load average during the run: {result['load_avg']} (other work on this machine makes figures noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
