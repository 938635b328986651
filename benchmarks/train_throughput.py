"""Training throughput on CIFAR-shaped batches, measured side by side in one run: our trainer's default CPU path
against a plain eager float32 NCHW loop of the same network, the levers one by one, and where a step's time goes.

    .venv/bin/python benchmarks/train_throughput.py [--model resnet20] [--batch 128] [--steps 10] [--rounds 3]
    .venv/bin/python benchmarks/train_throughput.py --levers [--batch 32] [--batches 32,128,512]
    .venv/bin/python benchmarks/train_throughput.py --profile [--recipe cifar-fast] [--data-dir DIR]
    .venv/bin/python benchmarks/train_throughput.py --sides 32,28,24,20,16 --batch 32 [--recipe cifar-fast --set resize_from=16] [--compile [--dynamic]]
    .venv/bin/python benchmarks/train_throughput.py --convs --batch 32

Each variant runs the same full training step (forward, cross-entropy, backward, SGD with momentum and weight
decay) on the same random batch after warm-up steps; rounds alternate between variants so that a busy machine
slows them alike. Prints images/s, the ratio to the baseline, and the share of this machine's measured matrix
product peak in the variant's arithmetic (fp32 or bf16).

``--profile`` splits one step of the recipe (its batch, label smoothing, channels_last) by operator with
torch.profiler, for fp32 and (where the CPU has it natively) bf16, and adds the parts around the step: the
recipe's data and augmentation (real CIFAR-10 when ``--data-dir`` holds it), the weight EMA update and the
recipe's evaluation, spread over the steps between two evaluations.

``--sides`` times the step of the trainer's path (bf16 where native, channels_last, one replica) at each image
side, side by side, and what progressive resizing (the recipe's ``resize_from`` / ``resize_until``, changed with
``--set``) makes of them over a whole run: its images/s against the same run at the full side. With ``--compile``
also one compiled model stepped through the sides as a run visits them: its images/s at each side against eager,
and the seconds of its first step at each (the recompilation a run pays whenever the side changes); ``--dynamic``
compiles it for symbolic shapes instead (``torch.compile(dynamic=True)``).

``--convs`` times each convolution of the network on its own, channels_last, in bf16 (where native) and fp32:
forward, input gradient and weight gradient per layer shape (``conv_split.py``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from resnet import create_model  # noqa: E402
from resnet.train.ghost import ghost_batch_norm  # noqa: E402
from resnet.models.complexity import count_macs  # noqa: E402
from resnet.train.precision import autocast_dtype  # noqa: E402
from resnet.train.replicas import CoreReplicas, replica_count  # noqa: E402
from resnet.train.recipes import parse_overrides, resolve_recipe  # noqa: E402
from resnet.train.schedule import train_side  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def matmul_peak_gflops(seconds: float = 1.0, dtype: torch.dtype = torch.float32, n: int = 1024) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def make_step(model_name: str, batch: int, *, channels_last: bool, amp: torch.dtype | None, compiled: bool,
              replicas: int = 1, optimizer: str = "foreach", bf16_weights: bool = False, compile_optimizer: bool = False,
              label_smoothing: float = 0.0, size: int = 32, num_classes: int = 10, ghost_batch: int = 0) -> Callable[[], None]:
    """One training step of ``model_name`` on a fixed random batch. ``optimizer``: "foreach" (PyTorch's
    default), "fused" or "loop"; ``bf16_weights``: weights, gradients and momentum in bf16, no fp32 master copy;
    ``ghost_batch``: batch norm over groups of that many images (recipe field ``ghost_batch``)."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=num_classes)
    if ghost_batch:
        ghost_batch_norm(model, ghost_batch)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, num_classes, (batch,))
    if bf16_weights:
        model, x = model.to(torch.bfloat16), x.to(torch.bfloat16)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    kind = {"foreach": dict(foreach=True), "fused": dict(fused=True), "loop": dict(foreach=False)}[optimizer]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, **kind)
    net = torch.compile(model) if compiled else model
    opt_step = torch.compile(opt.step) if compile_optimizer else opt.step
    model.train()
    if replicas > 1:
        cores = CoreReplicas(model, replicas)

        def replicated_step() -> None:
            opt.zero_grad(set_to_none=True)
            cores.forward_backward(x, y, amp=amp, label_smoothing=label_smoothing)
            opt_step()

        return replicated_step

    return functools.partial(train_step, net, opt_step, opt, x, y, amp=amp, label_smoothing=label_smoothing)


def train_step(net: torch.nn.Module, opt_step: Callable[[], object], opt: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, *, amp: torch.dtype | None, label_smoothing: float = 0.0) -> None:
    """Forward (under bf16 autocast when ``amp``), cross-entropy, backward and ``opt_step``."""
    with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        loss = F.cross_entropy(net(x).float(), y, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt_step()


def compiled_side_steps(model_name: str, batch: int, sides: list[int], amp: torch.dtype | None,
                        dynamic: bool = False) -> tuple[dict[str, Callable[[], None]], dict[int, float]]:
    """One model compiled as the trainer compiles it (``compile=true``: ``torch.compile``, default mode), stepped
    through ``sides`` from the smallest up, as a progressive-resizing run visits them. Returns a step at each side
    (on a fixed random batch, channels_last) and the seconds its first step took there: the compilation a run pays
    at each change of side. ``dynamic``: compiled for symbolic shapes from the first step (``dynamic=True``)."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10).to(memory_format=torch.channels_last).train()
    net = torch.compile(model, dynamic=True) if dynamic else torch.compile(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=True)
    steps, first_step_s = {}, {}
    for side in sorted(sides):
        x = torch.randn(batch, 3, side, side).contiguous(memory_format=torch.channels_last)
        step = functools.partial(train_step, net, opt.step, opt, x, torch.randint(0, 10, (batch,)), amp=amp)
        start = time.perf_counter()
        step()
        first_step_s[side] = time.perf_counter() - start
        steps[f"{side} px compiled"] = step
    return steps, first_step_s


def interleaved(variants: dict[str, Callable[[], None]], steps: int, rounds: int, warmup: int = 3) -> dict[str, float]:
    """Seconds per step (median over rounds) of each variant, the rounds alternating between variants."""
    for step in variants.values():  # warm-up (and compilation)
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - start) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def print_rates(title: str, per_step: dict[str, float], batch: int, flops_per_image: float,
                peaks: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"| {'variant':<62} | {'images/s':>9} | {'ratio':>6} | {'% of peak':>9} |")
    print(f"|{'-' * 64}|{'-' * 11}:|{'-' * 7}:|{'-' * 10}:|")
    base = None
    for name, seconds in per_step.items():
        rate = batch / seconds
        base = base or rate
        peak = peaks["bf16"] if "bf16" in name else peaks["fp32"]
        share = 100 * rate * flops_per_image / 1e9 / peak
        print(f"| {name:<62} | {rate:>9.1f} | {rate / base:>5.2f}x | {share:>8.1f}% |")


def default_variants(args: argparse.Namespace, amp: torch.dtype | None, replicas: int) -> dict[str, Callable[[], None]]:
    precision = "bf16" if amp else "fp32"
    variants = {
        "eager fp32 NCHW (baseline)": make_step(args.model, args.batch, channels_last=False, amp=None, compiled=False),
        f"ours: {precision}, channels_last, 1 replica": make_step(
            args.model, args.batch, channels_last=True, amp=amp, compiled=False),
        f"ours: trainer default ({precision}, channels_last, {replicas} core replicas)": make_step(
            args.model, args.batch, channels_last=True, amp=amp, compiled=False, replicas=replicas),
    }
    if args.compile:
        variants[f"ours + compile ({precision}, channels_last)"] = make_step(
            args.model, args.batch, channels_last=True, amp=amp, compiled=True)
    return variants


def lever_variants(model: str, batch: int, amp: torch.dtype | None) -> dict[str, Callable[[], None]]:
    """Each lever of issue 30 on its own, then together, at one batch size."""
    low = amp or torch.bfloat16  # without native bf16 the bf16 rows show what emulation costs
    step = lambda **kw: make_step(model, batch, **{"channels_last": True, "amp": low, "compiled": False, **kw})  # noqa: E731
    return {
        "eager fp32 NCHW (baseline)": make_step(model, batch, channels_last=False, amp=None, compiled=False),
        "fp32 channels_last": step(amp=None),
        "bf16 autocast NCHW": step(channels_last=False),
        "bf16 autocast channels_last (foreach SGD)": step(),
        "bf16 channels_last, for-loop SGD": step(optimizer="loop"),
        "bf16 channels_last, fused SGD": step(optimizer="fused"),
        "bf16 channels_last, 2 core replicas": step(replicas=2),
        "bf16 channels_last, 2 core replicas, ghost batch norm over 32": step(replicas=2, ghost_batch=32),
        "bf16 weights, no fp32 master (channels_last)": step(amp=None, bf16_weights=True),
        "bf16 channels_last + torch.compile (model)": step(compiled=True),
        "bf16 channels_last + compile (model), fused SGD": step(compiled=True, optimizer="fused"),
        "bf16 channels_last + compile (model and optimizer)": step(compiled=True, compile_optimizer=True),
    }


def side_rates(args: argparse.Namespace, amp: torch.dtype | None) -> None:
    """Images/s at each side, side by side, and the run-average speed-up of the recipe's resizing schedule."""
    sides = sorted({int(v) for v in args.sides.split(",") if v.strip()}, reverse=True)
    variants = {f"{side} px": make_step(args.model, args.batch, channels_last=True, amp=amp, compiled=False, size=side)
                for side in sides}
    compiled, first_step_s = compiled_side_steps(args.model, args.batch, sides, amp, args.dynamic) if args.compile else ({}, {})
    per_step = interleaved({**variants, **compiled}, args.steps, args.rounds)
    full = sides[0]
    print(f"\n{args.model}, batch {args.batch}, {'bf16' if amp else 'fp32'} channels_last, one replica "
          f"(median of {args.rounds} interleaved rounds of {args.steps} steps)")
    extra = " compiled images/s | compiled / eager | first compiled step, s |" if compiled else ""
    print(f"| side | images/s | ratio | pixels |{extra}\n|---:|---:|---:|---:|{'---:|' * 3 if compiled else ''}")
    for side in sides:
        row = (f"| {side} | {args.batch / per_step[f'{side} px']:.1f} | "
               f"{per_step[f'{full} px'] / per_step[f'{side} px']:.2f}x | {side * side / full / full:.2f}x |")
        if compiled:
            eager_s, compiled_s = per_step[f"{side} px"], per_step[f"{side} px compiled"]
            row += f" {args.batch / compiled_s:.1f} | {eager_s / compiled_s:.2f}x | {first_step_s[side]:.1f} |"
        print(row)
    recipe = resolve_recipe(args.recipe, parse_overrides(args.set))
    if recipe.resize_from:
        steps = [train_side(recipe, step, full) for step in range(recipe.iterations)]
        missing = sorted(set(steps) - set(sides))
        if missing:
            raise SystemExit(f"the schedule visits sides {missing} that --sides does not time; add them")
        seconds = sum(per_step[f"{side} px"] for side in steps)
        print(f"\n{args.recipe} with resize_from={recipe.resize_from}, resize_until={recipe.resize_until}: "
              f"{per_step[f'{full} px'] * len(steps) / seconds:.2f}x the images/s of the same run at {full} px "
              f"({seconds / 60:.1f} against {per_step[f'{full} px'] * len(steps) / 60:.1f} min of steps)")
        if compiled:
            compiling = sum(first_step_s[side] for side in set(steps))
            with_compile = sum(per_step[f"{side} px compiled"] for side in steps) + compiling
            print(f"compiled: {seconds / with_compile:.2f}x the eager resized run, its {compiling / 60:.1f} min of "
                  f"compilation included ({with_compile / 60:.1f} min)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to start)")
    p.add_argument("--dynamic", action="store_true", help="with --sides --compile: compile for symbolic shapes")
    p.add_argument("--levers", action="store_true", help="measure each lever of the training step side by side")
    p.add_argument("--batches", default="", help="with --levers: also the trainer's path at these batch sizes")
    p.add_argument("--profile", action="store_true", help="where a step of --recipe goes, per precision")
    p.add_argument("--recipe", default="cifar-fast")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/cifar10"))
    p.add_argument("--convs", action="store_true", help="each convolution's forward and two gradients, per layer")
    p.add_argument("--sides", default="", help="time the step at these image sides (e.g. 32,28,24,20,16)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --sides: a field of --recipe (resize_from, resize_until, iterations)")
    args = p.parse_args()
    amp = autocast_dtype("auto", torch.device("cpu"))
    peaks = {"fp32": matmul_peak_gflops(), "bf16": matmul_peak_gflops(dtype=torch.bfloat16)}
    macs = count_macs(create_model(args.model, num_classes=10), 32).macs
    print(f"{args.model} training, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {amp is not None}")
    print(f"measured matmul peak (1024x1024): fp32 {peaks['fp32']:.1f}, bf16 {peaks['bf16']:.1f} GFLOP/s; a training "
          f"step costs ~3x the forward's {macs / 1e6:.1f} M multiply-adds per image")
    if args.sides:
        side_rates(args, amp)
        return
    if args.convs:
        from conv_split import conv_table

        for dtype in ([torch.bfloat16] if amp else []) + [torch.float32]:
            print("\n" + conv_table(args.model, args.batch, dtype=dtype, channels_last=True, rounds=args.rounds,
                                    peak_gflops=peaks["bf16" if dtype == torch.bfloat16 else "fp32"]))
        return
    if args.profile:
        from train_profile import profile_recipe

        profile_recipe(args.model, args.recipe, args.data_dir, steps=args.steps)
        return
    if args.levers:
        per_step = interleaved(lever_variants(args.model, args.batch, amp), args.steps, args.rounds)
        print_rates(f"levers at batch {args.batch} (median of {args.rounds} interleaved rounds of {args.steps} steps)",
                    per_step, args.batch, 6 * macs, peaks)
        for batch in [int(b) for b in args.batches.split(",") if b.strip()]:
            sweep = {f"bf16 channels_last, batch {batch}": make_step(args.model, batch, channels_last=True,
                                                                     amp=amp or torch.bfloat16, compiled=False),
                     f"bf16 channels_last + compile, batch {batch}": make_step(
                         args.model, batch, channels_last=True, amp=amp or torch.bfloat16, compiled=True)}
            steps = max(2, args.steps * args.batch // batch)
            print_rates(f"batch {batch} ({steps} steps a round)", interleaved(sweep, steps, args.rounds), batch, 6 * macs, peaks)
        return
    replicas = replica_count(0, args.batch, device=torch.device("cpu"), distributed=False, compiled=False)
    per_step = interleaved(default_variants(args, amp, replicas), args.steps, args.rounds)
    print_rates(f"batch {args.batch}", per_step, args.batch, 6 * macs, peaks)


if __name__ == "__main__":
    main()
