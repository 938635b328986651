"""The GPU suite: ResNet-50 training and inference throughput on one GPU, ours against a
torchvision-reference-style eager AMP loop, on synthetic tensors and through a real JPEG data path,
measured side by side in one run, with the share of the GPU's dense bf16 peak.

    .venv/bin/python benchmarks/gpu_suite.py                     # full suite, ~5-8 min on one GPU
    .venv/bin/python benchmarks/gpu_suite.py --tiny --device cpu # smoke run (what make test runs)

Writes ``<out>/<gpu-name>.json`` and ``<out>/<gpu-name>.md`` (default out: docs/results/gpu). Every
figure names the device, driver, torch/CUDA versions and the command that made it.

What is measured (batch 256, 224 px, unless --tiny):
- peak: a large bf16 matrix product (the denominator of every "% of peak");
- training, synthetic tensors: the reference loop (torchvision's ``resnet50``, NCHW, eager, fp16
  autocast with a gradient scaler as in torchvision's reference scripts with ``--amp``) and ours
  (``resnet.create_model("resnet50")``, channels_last, bf16 autocast, ``torch.compile``, fused SGD);
- training, real JPEGs: ours again, fed by files of ImageNet's size distribution generated at start,
  decoded on the GPU (``torchcodec.decoders.decode_jpeg(device="cuda")``, nvJPEG), random-resized-cropped and
  flipped on the GPU, prefetched on a side stream while the previous step runs;
- inference: the reference (eager fp16 autocast, NCHW) and ours (compiled, channels_last) in bf16
  and fp16; int8 is reported as unsupported (PyTorch has no int8 CUDA convolution path).

Targets (H100/H200 class): training >= 1.5x the reference loop and >= 3,000 images/s; the JPEG path
>= 95 % of the synthetic rate.
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torchcodec.decoders import decode_jpeg  # noqa: E402
from torchcodec.encoders import JpegEncoder  # noqa: E402
from torchvision.transforms.v2 import RandomResizedCrop  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

from resnet import create_model  # noqa: E402
from resnet.models.complexity import count_macs  # noqa: E402
from resnet.reference import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they remain its only batched GPU JPEG decoder
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")

Step = Callable[[torch.Tensor, torch.Tensor], None]
TARGET_SPEEDUP = 1.5
TARGET_IMAGES_PER_S = 3000.0
TARGET_JPEG_SHARE = 0.95


@dataclass(frozen=True)
class Config:
    """Sizes of one suite run; ``full`` is the GPU suite, ``tiny`` the CPU smoke run."""

    model: str = "resnet50"
    batch: int = 256
    size: int = 224
    warmup: int = 12  # steps before timing (torch.compile compiles here)
    steps: int = 25  # timed steps per round
    rounds: int = 3  # rounds alternate between variants, so a busy device slows them alike
    jpegs: int = 2048  # generated files; the loader cycles over them
    scale: float = 1.0  # multiplies the generated photos' sides (ImageNet's distribution at 1.0)
    matmul: int = 8192
    compile_backend: str = "inductor"

    @classmethod
    def tiny(cls) -> "Config":
        return cls(model="resnet18", batch=4, size=64, warmup=1, steps=2, rounds=1, jpegs=8, scale=0.2,
                   matmul=256, compile_backend="eager")


# -- the device and its peak ------------------------------------------------------------------------

def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_suite: error: --device cuda but no CUDA device is visible; use --device cpu --tiny")
    return torch.device(name)


def environment(device: torch.device, argv: list[str]) -> dict[str, str]:
    env = {"torch": torch.__version__, "torchvision": torchvision.__version__, "python": platform.python_version(),
           "command": "python benchmarks/gpu_suite.py " + shlex.join(argv), "date": time.strftime("%Y-%m-%d")}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device=props.name, memory_gib=f"{props.total_memory / 2**30:.0f}",
                   capability=f"{props.major}.{props.minor}", cuda=str(torch.version.cuda),
                   cudnn=str(torch.backends.cudnn.version()), driver=_driver_version())
    else:
        env.update(device=f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                          f"{torch.backends.cpu.get_cpu_capability()})", driver="n/a")
    return env


def _driver_version() -> str:
    if shutil.which("nvidia-smi") is None:
        return "unknown (no nvidia-smi)"
    out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, n: int, seconds: float = 2.0) -> float:
    """Dense bf16 matrix-product rate: the peak this device reaches in practice."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(5):
            a @ b
        count += 5
        sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e12


# -- training steps ---------------------------------------------------------------------------------

def _optimizer(model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, **fused)


def reference_train_step(cfg: Config, device: torch.device) -> Step:
    """torchvision's reference ``train.py --amp``: its own model, NCHW, eager, fp16 autocast + scaler
    (bf16 on CPU, where fp16 autocast is not what anyone trains with)."""
    model = torchvision.models.get_model(cfg.model, num_classes=1000).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=dtype):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def our_train_step(cfg: Config, device: torch.device) -> Step:
    """Ours: channels_last, bf16 autocast, the whole forward/backward compiled, fused SGD."""
    model = create_model(cfg.model).to(device).to(memory_format=torch.channels_last).train()
    opt = _optimizer(model, device)
    net = torch.compile(model, backend=cfg.compile_backend)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


# -- inference --------------------------------------------------------------------------------------

def reference_infer(cfg: Config, device: torch.device) -> Step:
    model = torchvision.models.get_model(cfg.model, num_classes=1000).to(device).eval()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    def run(x: torch.Tensor, _: torch.Tensor) -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype):
            model(x)

    return run


def our_infer(cfg: Config, device: torch.device, dtype: torch.dtype) -> Step:
    """Weights and activations in ``dtype`` (no autocast casts per call), channels_last, compiled."""
    model = create_model(cfg.model).to(device).eval().to(dtype=dtype, memory_format=torch.channels_last)
    net = torch.compile(model, backend=cfg.compile_backend)

    def run(x: torch.Tensor, _: torch.Tensor) -> None:
        with torch.inference_mode():
            net(x.to(dtype))

    return run


def fp16_supported(device: torch.device) -> bool:
    return device.type == "cuda"


# -- the JPEG data path -----------------------------------------------------------------------------

def imagenet_like_sizes(count: int, scale: float, rng: random.Random) -> list[tuple[int, int]]:
    """(width, height) drawn like ImageNet's training photos: most 500 px on the long side at 4:3 or
    3:2, a fifth portrait, a tenth of other sizes (mean ~ 400 x 350)."""
    sizes = []
    for _ in range(count):
        r = rng.random()
        if r < 0.55:
            w, h = 500, rng.choice((375, 333, 375, 400))
        elif r < 0.75:
            w, h = rng.choice((375, 333)), 500
        elif r < 0.9:
            w, h = rng.randint(250, 500), rng.randint(200, 500)
        else:
            w, h = rng.randint(500, 1024), rng.randint(400, 768)
        sizes.append((max(16, round(w * scale)), max(16, round(h * scale))))
    return sizes


def write_jpegs(folder: Path, cfg: Config, seed: int = 0) -> list[Path]:
    """Photo-like JPEGs (smooth colour fields with texture, quality 90: ~100 KB at 500 x 375)."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    paths = []
    for i, (w, h) in enumerate(imagenet_like_sizes(cfg.jpegs, cfg.scale, rng)):
        coarse = torch.rand(1, 3, 6, 8, generator=gen)
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
        img = (field + 0.08 * torch.randn(3, h, w, generator=gen)).clamp(0, 1).mul(255).to(torch.uint8)
        path = folder / f"{i:05d}.jpg"
        JpegEncoder(img).to_file(path, quality=90)
        paths.append(path)
    return paths


class JpegBatches:
    """Batches of (images, labels) from JPEG files: read on the CPU, decoded, random-resized-cropped,
    flipped and normalised on ``device``, a batch ahead on a side stream (a background thread)."""

    def __init__(self, paths: list[Path], cfg: Config, device: torch.device, depth: int = 2):
        self.files = [p.read_bytes() for p in paths]  # the page cache would hold them anyway
        self.cfg, self.device = cfg, device
        self.crop = RandomResizedCrop(cfg.size, antialias=True)
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
        self.ready: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._fill, daemon=True)
        self.thread.start()

    def _batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.files)
        data = [self.files[(index * self.cfg.batch + k) % n] for k in range(self.cfg.batch)]
        decoded = decode_jpeg(data, mode="RGB", device=self.device)  # TorchCodec: torchvision.io's is deprecated
        crops = []
        for img in decoded:
            params = self.crop.make_params([img])
            top, left, h, w = params["top"], params["left"], params["height"], params["width"]
            out = TF.resized_crop(img, top, left, h, w, [self.cfg.size, self.cfg.size], antialias=True)
            crops.append(TF.horizontal_flip(out) if random.random() < 0.5 else out)
        x = (torch.stack(crops).float() - self.mean) / self.std
        y = torch.randint(0, 1000, (self.cfg.batch,), device=self.device)
        return x.contiguous(memory_format=torch.channels_last), y

    def _fill(self) -> None:
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        index = 0
        while not self.stop.is_set():
            if stream is None:
                item = (*self._batch(index), None)
            else:
                with torch.cuda.stream(stream):
                    x, y = self._batch(index)
                    event = torch.cuda.Event()
                    event.record(stream)
                item = (x, y, event)
            index += 1
            while not self.stop.is_set():
                try:
                    self.ready.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            x, y, event = self.ready.get()
            if event is not None:
                current = torch.cuda.current_stream(self.device)
                current.wait_event(event)
                x.record_stream(current)
                y.record_stream(current)
            yield x, y

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


# -- timing -----------------------------------------------------------------------------------------

Feed = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def synthetic_feed(cfg: Config, device: torch.device) -> Feed:
    x = torch.randn(cfg.batch, 3, cfg.size, cfg.size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (cfg.batch,), device=device)
    return lambda: (x, y)


def nchw_feed(cfg: Config, device: torch.device) -> Feed:
    x = torch.randn(cfg.batch, 3, cfg.size, cfg.size, device=device)
    y = torch.randint(0, 1000, (cfg.batch,), device=device)
    return lambda: (x, y)


def measure(variants: dict[str, tuple[Step, Feed]], cfg: Config, device: torch.device) -> dict[str, float]:
    """Images/s of each variant: warm-up (compilation) first, then rounds that alternate variants."""
    for step, feed in variants.values():
        for _ in range(cfg.warmup):
            step(*feed())
    sync(device)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(cfg.rounds):
        for name, (step, feed) in variants.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(cfg.steps):
                step(*feed())
            sync(device)
            seconds[name].append((time.perf_counter() - start) / cfg.steps)
    return {name: cfg.batch / statistics.median(ts) for name, ts in seconds.items()}


# -- the suite --------------------------------------------------------------------------------------

def run_suite(cfg: Config, device: torch.device, argv: list[str]) -> dict:
    torch.backends.cudnn.benchmark = True
    amp = "fp16" if device.type == "cuda" else "bf16"  # the reference loop's autocast type (see reference_train_step)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    started = time.perf_counter()
    macs = count_macs(create_model(cfg.model), cfg.size).macs
    peak = matmul_tflops(device, cfg.matmul, seconds=2.0 if device.type == "cuda" else 0.3)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-jpegs-") as tmp:
        paths = write_jpegs(Path(tmp), cfg)
        loader = JpegBatches(paths, cfg, device)
        batches = iter(loader)
        try:
            ours = our_train_step(cfg, device)
            train = measure({
                f"reference: torchvision eager AMP {amp}, NCHW": (reference_train_step(cfg, device),
                                                                   nchw_feed(cfg, device)),
                "ours: compiled, bf16, channels_last (synthetic)": (ours, synthetic_feed(cfg, device)),
                f"ours: compiled, bf16, channels_last (real JPEGs, {device.type.upper()} decode)": (
                    ours, lambda: next(batches)),
            }, cfg, device)
        finally:
            loader.close()
    infer_variants = {
        f"reference: torchvision eager AMP {amp}, NCHW": (reference_infer(cfg, device), nchw_feed(cfg, device)),
        "ours: compiled, bf16, channels_last": (our_infer(cfg, device, torch.bfloat16), synthetic_feed(cfg, device)),
    }
    if fp16_supported(device):
        infer_variants["ours: compiled, fp16, channels_last"] = (our_infer(cfg, device, torch.float16),
                                                                 synthetic_feed(cfg, device))
    infer = measure(infer_variants, cfg, device)
    return {"environment": environment(device, argv), "config": asdict(cfg), "macs_per_image": macs,
            "bf16_matmul_tflops": peak, "train": _rows(train, 3 * 2 * macs, peak),
            "inference": _rows(infer, 2 * macs, peak),
            "int8": "not measured: PyTorch has no int8 CUDA convolution path (TensorRT or torch-tensorrt would)",
            "targets": targets(train), "seconds": time.perf_counter() - started}


def _rows(rates: dict[str, float], flops_per_image: float, peak_tflops: float) -> list[dict]:
    base = next(iter(rates.values()))
    return [{"variant": name, "images_per_s": rate, "vs_reference": rate / base,
             "percent_of_bf16_peak": 100 * rate * flops_per_image / (peak_tflops * 1e12)}
            for name, rate in rates.items()]


def targets(train: dict[str, float]) -> dict[str, dict]:
    ref, synthetic, jpeg = list(train.values())
    return {
        "train_speedup_vs_reference": {"value": synthetic / ref, "target": TARGET_SPEEDUP,
                                       "met": synthetic / ref >= TARGET_SPEEDUP},
        "train_images_per_s": {"value": synthetic, "target": TARGET_IMAGES_PER_S,
                               "met": synthetic >= TARGET_IMAGES_PER_S},
        "jpeg_share_of_synthetic": {"value": jpeg / synthetic, "target": TARGET_JPEG_SHARE,
                                    "met": jpeg / synthetic >= TARGET_JPEG_SHARE},
    }


def to_markdown(result: dict) -> str:
    env, cfg = result["environment"], result["config"]
    lines = [f"# GPU suite: {env['device']}", "",
             f"`{env['command']}` on {env['date']}; torch {env['torch']}, torchvision {env['torchvision']}, "
             f"CUDA {env.get('cuda', 'n/a')}, driver {env['driver']}. {cfg['model']}, batch {cfg['batch']}, "
             f"{cfg['size']} px. Measured bf16 matmul peak: {result['bf16_matmul_tflops']:.1f} TFLOP/s.", ""]
    for part in ("train", "inference"):
        lines += [f"## {part.capitalize()}", "", "| variant | images/s | vs reference | % of bf16 peak |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['variant']} | {r['images_per_s']:,.0f} | {r['vs_reference']:.2f}x | "
                  f"{r['percent_of_bf16_peak']:.1f} % |" for r in result[part]]
        lines.append("")
    lines += ["int8: " + result["int8"], "", "## Targets (H100/H200 class)", "", "| target | measured | needed | met |",
              "|---|---:|---:|---|"]
    for name, t in result["targets"].items():
        lines.append(f"| {name} | {t['value']:.2f} | {t['target']:.2f} | {'yes' if t['met'] else 'no'} |")
    lines += ["", f"Suite wall time: {result['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def slug(device_name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")[:60] or "device"


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="tiny sizes: the CPU smoke run of make test")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs/results/gpu")
    p.add_argument("--batch", type=int, default=None, help="override the batch size")
    args = p.parse_args(argv)
    cfg = Config.tiny() if args.tiny else Config()
    if args.batch:
        cfg = Config(**{**asdict(cfg), "batch": args.batch})
    device = pick_device(args.device)
    if device.type == "cpu" and not args.tiny:
        print("gpu_suite: no GPU: running on the CPU at full size would take hours; add --tiny for a smoke run",
              file=sys.stderr)
        raise SystemExit(2)
    result = run_suite(cfg, device, argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / slug(result["environment"]["device"] if device.type == "cuda" else "cpu-smoke")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = to_markdown(result)
    stem.with_suffix(".md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
