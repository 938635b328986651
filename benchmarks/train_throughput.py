"""Training throughput of ResNet-20 on CIFAR-shaped batches: our trainer's default CPU path against a plain
eager float32 NCHW loop of the same network, measured side by side in one run.

    .venv/bin/python benchmarks/train_throughput.py [--batch 128] [--steps 30] [--model resnet20]

Each variant runs the same full training step (forward, cross-entropy, backward, SGD with momentum
and weight decay) on the same random batch after warm-up steps; rounds alternate between variants
so that a busy machine slows them alike. Prints images/s, the ratio to the baseline, and the share of
this machine's measured float32 matrix-product peak.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from resnet import create_model  # noqa: E402
from resnet.models.complexity import count_macs  # noqa: E402
from resnet.train.precision import autocast_dtype  # noqa: E402
from resnet.train.replicas import CoreReplicas, replica_count  # noqa: E402


def matmul_peak_gflops(seconds: float = 1.0) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - start) / 1e9


def make_step(model_name: str, batch: int, *, channels_last: bool, amp: torch.dtype | None, compiled: bool,
              replicas: int = 1) -> Callable[[], None]:
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    net = torch.compile(model) if compiled else model
    model.train()
    if replicas > 1:
        cores = CoreReplicas(model, replicas)

        def replicated_step() -> None:
            opt.zero_grad(set_to_none=True)
            cores.forward_backward(x, y, amp=amp, label_smoothing=0.0)
            opt.step()

        return replicated_step

    def step() -> None:
        with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to start)")
    args = p.parse_args()

    amp = autocast_dtype("auto", torch.device("cpu"))
    replicas = replica_count(0, args.batch, device=torch.device("cpu"), distributed=False, compiled=False)
    precision = "bf16" if amp else "fp32"
    variants: dict[str, Callable[[], None]] = {
        "eager fp32 NCHW (baseline)": make_step(args.model, args.batch, channels_last=False, amp=None, compiled=False),
        f"ours: {precision}, channels_last, 1 replica": make_step(
            args.model, args.batch, channels_last=True, amp=amp, compiled=False),
        f"ours: trainer default ({precision}, channels_last, {replicas} core replicas)": make_step(
            args.model, args.batch, channels_last=True, amp=amp, compiled=False, replicas=replicas),
    }
    if args.compile:
        variants["ours + --set compile=true"] = make_step(args.model, args.batch, channels_last=True, amp=amp, compiled=True)
    for step in variants.values():  # warm-up (and compilation)
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps)
    macs_total = count_macs(create_model(args.model, num_classes=10), 32).macs
    peak = matmul_peak_gflops()
    print(f"{args.model} training, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {amp is not None}")
    print(f"measured fp32 matmul peak: {peak:.1f} GFLOP/s; a training step costs ~3x the forward's "
          f"{macs_total / 1e6:.1f} M multiply-adds per image")
    base = None
    print(f"{'variant':<64} {'images/s':>10} {'ratio':>7} {'% of peak':>10}")
    for name, ts in times.items():
        rate = args.batch / statistics.median(ts)
        base = base or rate
        share = 100 * rate * 3 * 2 * macs_total / 1e9 / peak
        print(f"{name:<64} {rate:>10.1f} {rate / base:>6.2f}x {share:>9.1f}%")


if __name__ == "__main__":
    main()
