"""Training-step speed of "pool"-block networks (Page's ResNet-9 family) on one core, side by side: what pooling
before batch norm, CELU and airbench94's widths each do to a core replica's images/s.

    chrt -f 1 .venv/bin/python benchmarks/pool_net_cost.py [--batch 256] [--variants r9,r9pf,r9pfcelu,lite,litepf,litepfcelu]
    chrt -f 1 .venv/bin/python benchmarks/pool_net_cost.py --variants litepf --batch 64,128,256,512
    chrt -f 1 .venv/bin/python benchmarks/pool_net_cost.py --variants litepf,litepfgelu,litepf-c,litepfgelu-c

One thread (a core replica of the trainer's two), bf16 autocast, channels_last, label smoothing 0.2, Nesterov SGD
with weight decay, as `cifar94` trains; rounds alternate between the variants. Variants: ``r9`` is ``resnet9``,
``lite`` its widths set to 64/256/256 with a 32-wide prep conv; ``pf`` pools straight after each stage's opening
convolution (``pool_first``, as ``resnet9_lite``); ``celu`` / ``gelu`` build it with that ``activation`` instead of
ReLU (CELU(0.3) as Page 2019 tried, GELU as airbench94 has it); a ``-c`` ending trains the network through
``torch.compile`` (Inductor), which fuses each batch norm with its activation.
Several batch sizes (a core replica's share of the recipe's batch) make a row for each variant and size.
Results: docs/results/train/cpu-zen4-cifar94/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from resnet import create_model  # noqa: E402
from resnet.models.complexity import count_macs  # noqa: E402
from resnet.models.specs import ACTIVATIONS  # noqa: E402


def build(variant: str) -> nn.Module:
    overrides = {} if variant.startswith("r9") else {"widths": (64, 256, 256), "stem_width": 32}
    activation = next((name for name in ACTIVATIONS if name in variant), "relu")
    return create_model("resnet9", pool_first="pf" in variant, activation=activation, **overrides)


def make_step(model: nn.Module, batch: int, compiled: bool):
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model = torch.compile(model) if compiled else model

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", default="256", help="images per step (a core replica's half of 512); several: 128,256")
    p.add_argument("--variants", default="r9,r9pf,r9pfcelu,lite,litepf,litepfcelu")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="steps per round")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    batches = [int(b) for b in args.batch.split(",")]
    rows = [(v, b) for v in args.variants.split(",") for b in batches]
    steps = {row: make_step(build(row[0].removesuffix("-c")), row[1], row[0].endswith("-c")) for row in rows}
    for step in steps.values():
        for _ in range(2):
            step()
    times: dict[tuple[str, int], list[float]] = {row: [] for row in rows}
    repeats = {row: args.steps * max(1, 256 // row[1]) for row in rows}  # small batches: as many images as 256
    for _ in range(args.rounds):
        for row, step in steps.items():
            start = time.perf_counter()
            for _ in range(repeats[row]):
                step()
            times[row].append((time.perf_counter() - start) / repeats[row])
    print("| variant | batch | multiply-adds | images/s per core | ratio |\n|---|---:|---:|---:|---:|")
    base = None
    for variant, batch in rows:
        rate = batch / statistics.median(times[(variant, batch)])
        base = base or rate
        macs = count_macs(build(variant.removesuffix("-c")).eval(), 32).macs / 1e6
        print(f"| {variant} | {batch} | {macs:.0f} M | {rate:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
