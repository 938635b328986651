"""Accuracy kept by every inference engine: the akamaster ResNet-56 on the 10,000 CIFAR-10 test images.

Target (issue 28): for every engine ``optimize`` can pick (ours, ONNX Runtime, OpenVINO, and with ``--pytorch``
PyTorch export / torchao) and for its default (``engine="auto"``, measured from a fresh cache at batch 500, the
batch this script predicts with), in each of fp32 / bf16 / int8, top-1 within 0.3 points of the unoptimised
model. Agreement with the unoptimised predictions is reported. int8 is calibrated on the first N training
images, never on test images.

    .venv/bin/python benchmarks/inference_accuracy.py --stem accuracy-zen4     # writes docs/results/inference/<stem>.{md,json}
    .venv/bin/python benchmarks/inference_accuracy.py --model resnet20 --calibration 256 --limit 2000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import resnet  # noqa: E402
from resnet.deploy import optimize  # noqa: E402
from resnet.deploy.bench import pin_threads  # noqa: E402
from resnet.utils.atomic import atomic_write_text  # noqa: E402

SHARED = [os.environ.get("RESNET_SHARED_DIR"), str(REPO.parent / "shared"), "/work/shared"]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
ALLOWED_DROP = 0.3  # points of top-1 accuracy, for every engine and mode (issue 28)
MODES = ("fp32", "bf16", "int8")


def shared_dir() -> Path:
    for c in SHARED:
        if c and (Path(c) / "data").is_dir():
            return Path(c)
    sys.exit("no shared data folder (set RESNET_SHARED_DIR)")


def load_split(root: Path, split: str, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """uint8 [N, 3, 32, 32] images and labels, through resnet.data when it is there, else straight from the PNGs."""
    try:
        from resnet.data import load_arrays  # type: ignore[attr-defined]

        ds = load_arrays("cifar10", split, root)
        images, labels = ds.images, ds.labels
        return (images[:limit], labels[:limit]) if limit else (images, labels)
    except (ImportError, AttributeError):
        pass
    from PIL import Image

    classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
    files = [(path, label) for label, name in enumerate(classes) for path in sorted((root / split / name).iterdir())]
    if limit:
        # Every k-th file, so a prefix of the training set still covers every class.
        files = files[:: max(1, len(files) // limit)][:limit]
    images = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p, _ in files])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor([label for _, label in files])


def normalise(images: Tensor) -> Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def predict(fn, images: Tensor, batch: int = 500) -> Tensor:  # noqa: ANN001
    preds = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            preds.append(fn(normalise(images[start : start + batch])).argmax(1))
    return torch.cat(preds)


def engine_runners(model: torch.nn.Module, calibration: Tensor, example: Tensor, families: list[str],
                   timings: dict[str, float]) -> dict[str, object]:
    """Every engine family in every mode it runs here, and the default (auto, from a fresh cache), keyed by a row name."""
    from resnet.errors import ResNetError

    runners: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["RESNET_ENGINE_CACHE"] = str(Path(cache) / "engines.json")
        for mode in MODES:
            for family in [*families, "auto"]:
                start = time.perf_counter()
                try:
                    fast = optimize(model, mode, calibration=calibration, example_input=example, engine=family)
                except ResNetError as err:  # e.g. an engine that cannot run bf16 on this CPU
                    print(f"{mode} on {family}: {err}", file=sys.stderr)
                    continue
                name = f"{mode}, default (auto: {fast.engine})" if family == "auto" else f"{mode}, {fast.engine}"
                runners[name], timings[name] = fast, time.perf_counter() - start
    os.environ.pop("RESNET_ENGINE_CACHE")
    return runners


def main() -> int:  # long: one report from every runner
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet56", choices=("resnet20", "resnet32", "resnet44", "resnet56"))
    ap.add_argument("--calibration", type=int, default=512, help="training images used to calibrate int8 (default 512)")
    ap.add_argument("--limit", type=int, default=None, help="first N test images only (quick runs)")
    ap.add_argument("--pytorch", action="store_true", help="also score the PyTorch export / torchao engines (minutes of compiling)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write docs/results/inference/")
    ap.add_argument("--stem", default="accuracy", help="file name stem under docs/results/inference/ (default: accuracy)")
    args = ap.parse_args()

    threads = pin_threads()
    shared = shared_dir()
    (weights,) = (shared / "data" / "reference-weights" / "akamaster-cifar10").glob(f"{args.model}-*.th")
    model = resnet.create_model(args.model)
    resnet.load_pretrained(model, weights)
    model.eval()
    cifar = shared / "data" / "cifar10"
    test_x, test_y = load_split(cifar, "test")
    if args.limit:
        test_x, test_y = test_x[: args.limit], test_y[: args.limit]
    calib_x, _ = load_split(cifar, "train", args.calibration)
    calibration = normalise(calib_x)

    runners: dict[str, object] = {"unoptimised (eager fp32)": model}
    timings: dict[str, float] = {}
    families = ["ours", "onnxruntime", "openvino", *(["pytorch"] if args.pytorch else [])]
    runners.update(engine_runners(model, calibration, normalise(test_x[:500]), families, timings))

    preds = {name: predict(fn, test_x) for name, fn in runners.items()}
    reference = preds["unoptimised (eager fp32)"]
    fp32_preds = reference
    base_acc = (reference == test_y).float().mean().item() * 100
    rows = []
    for name, p in preds.items():
        acc = (p == test_y).float().mean().item() * 100
        allowed = None if p is reference else ALLOWED_DROP
        rows.append(
            {
                "runner": name,
                "top1_acc": round(acc, 2),
                "top1_err": round(100 - acc, 2),
                "delta_points": round(acc - base_acc, 2),
                "agreement_with_unoptimised": round((p == fp32_preds).float().mean().item() * 100, 2),
                "target": None if allowed is None else f"within {allowed}",
                "meets_target": None if allowed is None else base_acc - acc <= allowed,
            }
        )
    report = {
        "model": args.model, "weights": weights.name, "test_images": len(test_y), "calibration_images": len(calibration),
        "calibration_source": "CIFAR-10 training images (every k-th file)", "threads": threads, "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "rows": rows, "setup_seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    lines = [
        f"# Accuracy of the inference modes: akamaster {args.model} on {len(test_y):,} CIFAR-10 test images",
        "",
        f"int8 calibrated on {len(calibration)} training images (ours: histogram observer; ONNX Runtime: min/max; OpenVINO: NNCF). "
        f"CPU vector capability: {torch.backends.cpu.get_cpu_capability()}. Produced by `benchmarks/inference_accuracy.py`.",
        "",
        "| runner | top-1 acc % | top-1 err % | vs unoptimised (points) | agrees with unoptimised % | target | met |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        met = "" if r["meets_target"] is None else ("yes" if r["meets_target"] else "NO")
        lines.append(
            f"| {r['runner']} | {r['top1_acc']:.2f} | {r['top1_err']:.2f} | {r['delta_points']:+.2f} | "
            f"{r['agreement_with_unoptimised']:.2f} | {r['target'] or ''} | {met} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        out = REPO / "docs" / "results" / "inference"
        atomic_write_text(out / f"{args.stem}.md", text)
        atomic_write_text(out / f"{args.stem}.json", json.dumps(report, indent=2) + "\n")
        print(f"wrote {out / args.stem}.md and .json")
    return 0 if all(r["meets_target"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
