"""Fine-tuning speed at 224 px (what CPU users do most): ResNet-50 on a folder of photos with the ``finetune``
recipe, eager fp32 against the trainer's path (bf16 where the CPU has it natively, channels_last), measured side
by side in one run, with the share of the data path (random resized crop and flip of the photos, which the
trainer decodes once) beside the step.

    .venv/bin/python benchmarks/finetune_throughput.py [--data-dir ../shared/data/caltech101-10] [--batch 64]

The reference is MLPerf Training's ResNet-50 on Sapphire Rapids in bf16, about 4.8 images/s per core. The
weights are random: a step costs the same whatever they hold.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from resnet.train.distributed import DistContext  # noqa: E402
from resnet.train.photos import photo_data  # noqa: E402
from resnet.train.precision import autocast_dtype  # noqa: E402
from resnet.train.recipes import resolve_recipe  # noqa: E402
from train_throughput import interleaved, matmul_peak_gflops, make_step  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MLPERF_SPR_BF16_PER_CORE = 4.8  # images/s per core, ResNet-50 training in bf16 (issue 30's reference)


def data_seconds_per_batch(data_dir: str, batch: int, batches: int = 5) -> float:
    recipe = resolve_recipe("finetune", {"batch_size": batch})
    start = time.perf_counter()
    photos = photo_data(data_dir, recipe, None, seed=0, device=torch.device("cpu"), dist=DistContext(), strict=False)
    print(f"photos decoded and scaled once: {photos.train_size} in {time.perf_counter() - start:.0f} s")
    stream = photos.stream(0, 0)
    next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return (time.perf_counter() - start) / batches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/caltech101-10"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    amp = autocast_dtype("auto", torch.device("cpu"))
    size = resolve_recipe("finetune").image_size
    threads = torch.get_num_threads()
    print(f"{args.model} fine-tuning at {size} px, batch {args.batch}, {threads} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {amp is not None}; matmul fp32 "
          f"{matmul_peak_gflops():.0f}, bf16 {matmul_peak_gflops(dtype=torch.bfloat16):.0f} GFLOP/s")
    data = data_seconds_per_batch(args.data_dir, args.batch)
    precision = "bf16" if amp else "fp32"
    variants = {
        "eager fp32 NCHW (baseline)": make_step(args.model, args.batch, channels_last=False, amp=None, compiled=False,
                                                size=size, num_classes=10),
        f"trainer's path ({precision}, channels_last)": make_step(
            args.model, args.batch, channels_last=True, amp=amp, compiled=False, size=size, num_classes=10),
    }
    per_step = interleaved(variants, args.steps, args.rounds, warmup=1)
    print("\n| variant | images/s | ratio | images/s per core | data share (decode once, crop+flip per batch) |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for name, seconds in per_step.items():
        rate = args.batch / (seconds + data)
        base = base or rate
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x | {rate / threads:.2f} | {100 * data / (seconds + data):.1f} % |")
    print(f"| MLPerf Training, Sapphire Rapids bf16 (reference) | | | {MLPERF_SPR_BF16_PER_CORE} | |")


if __name__ == "__main__":
    main()
