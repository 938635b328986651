"""Data layer speed: decode-once cache, and batched tensor augmentation against per-image transforms.

1. ``load_arrays("cifar10", split)`` from the PNG folder into an empty cache directory (decode all PNGs,
   in parallel processes) and again (read the safetensors cache), in fresh subprocesses so that
   neither load profits from the other's imports or memory.
2. One training epoch of batches (pad-4 crop + flip, normalise) from ``TensorLoader`` against a
   ``torch.utils.data.DataLoader`` applying torchvision's ``RandomCrop(32, 4)`` and
   ``RandomHorizontalFlip`` to one image at a time, on the same uint8 data and device.

    .venv/bin/python benchmarks/data_cache.py --data-dir ../shared/data/cifar10            # train split
    .venv/bin/python benchmarks/data_cache.py --split test --limit 10000 --device cuda
    .venv/bin/python benchmarks/data_cache.py --synthetic 50000 --device cuda             # part 2 only

Shared machines make single runs noisy: compare the ratios printed by one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from resnet.data import ArrayDataset, TensorLoader  # noqa: E402

_CHILD = """
import sys, time
sys.path.insert(0, {src!r})
t = time.perf_counter()
from resnet.data import load_arrays
imported = time.perf_counter()
ds = load_arrays("cifar10", {split!r}, {data_dir!r}, cache_dir={cache!r})
print(f"{{imported - t:.3f}} {{time.perf_counter() - imported:.3f}} {{len(ds)}}")
"""


def timed_load(data_dir: str, split: str, cache: str) -> tuple[float, float, int]:
    """(seconds to import resnet.data, seconds in load_arrays, images) in a fresh interpreter."""
    code = _CHILD.format(src=str(REPO / "src"), split=split, data_dir=data_dir, cache=cache)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def cache_benchmark(data_dir: str, split: str) -> ArrayDataset:
    with tempfile.TemporaryDirectory(prefix="resnet-cache-bench-") as cache:
        import_1, first, n = timed_load(data_dir, split, cache)
        import_2, second, _ = timed_load(data_dir, split, cache)
        print(f"load_arrays('cifar10', {split!r}) of {n} PNGs, each in a fresh interpreter:")
        print(f"  first (decode + write cache) {first:7.2f} s  (+ {import_1:.2f} s to import torch and resnet.data)")
        print(f"  second (cache hit)           {second:7.2f} s  (+ {import_2:.2f} s to import)"
              f"   -> {first / second:.0f}x faster")
        from resnet.data import load_arrays

        return load_arrays("cifar10", split, data_dir, cache_dir=cache)


def per_image_epoch(ds: ArrayDataset, batch: int, device: torch.device, workers: int) -> float:
    from torchvision.transforms import v2

    transform = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                            v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(ds.mean), list(ds.std))])

    class PerImage(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(ds)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return transform(ds.images[i]), int(ds.labels[i])

    loader = torch.utils.data.DataLoader(PerImage(), batch_size=batch, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def tensor_loader_epoch(ds: ArrayDataset, batch: int, device: torch.device) -> float:
    loader = TensorLoader(ds, batch, shuffle=True, augment=True, device=device)
    next(iter(loader))  # first batch pays for CUDA kernels' loading
    if device.type == "cuda":
        torch.cuda.synchronize()
    loader.set_epoch(1)
    start = time.perf_counter()
    for x, y in loader:
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--synthetic", type=int, default=0, help="skip part 1; N random 32x32 images for part 2")
    parser.add_argument("--limit", type=int, default=10000, help="images per epoch in part 2")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-image baseline")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.synthetic:
        n = args.synthetic
        ds = ArrayDataset(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (n,)),
                          [str(i) for i in range(10)], (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    else:
        ds = cache_benchmark(args.data_dir, args.split)
    ds = ds.subset(torch.arange(min(args.limit, len(ds))))
    fast = tensor_loader_epoch(ds, args.batch_size, device)
    slow = per_image_epoch(ds, args.batch_size, device, args.workers)
    print(f"one epoch of {len(ds)} augmented images, batch {args.batch_size}, on {device}:")
    print(f"  TensorLoader (batched on device)           {fast:7.3f} s  {len(ds) / fast:10.0f} img/s")
    print(f"  DataLoader + per-image v2 ({args.workers} workers)      {slow:7.3f} s  {len(ds) / slow:10.0f} img/s"
          f"   -> TensorLoader {slow / fast:.1f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
