"""``resnet summary``: a per-stage table in the style of the paper's Table 1, or ``--paper``."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from ..errors import UsageError
from ..models.specs import SHORTCUT_OPTIONS
from .common import build_model, console, examples, hidden_alias, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary", help="per-stage architecture table with params and multiply-adds",
        description="A per-stage table of one network in the style of the paper's Table 1 (output size, blocks, "
                    "channels, parameters, multiply-adds), or with --paper the paper's networks beside its figures.",
        epilog=examples("resnet summary resnet50", "resnet summary resnet110 --json", "resnet summary --paper"),
    )
    p.add_argument("name", nargs="?", help="model name, e.g. resnet50 or resnet110")
    p.add_argument("--input-size", type=int, default=None, help="input side in pixels (default 224 ImageNet, 32 CIFAR)")
    p.add_argument("--variant", dest="version", choices=("v1", "v1.5"), default=None,
                   help="bottleneck stride placement: v1 (the paper's, in the 1x1) or v1.5 (torchvision's, in the 3x3)")
    hidden_alias(p, "--version", "version", choices=("v1", "v1.5"))
    p.add_argument("--shortcut", choices=SHORTCUT_OPTIONS, default=None, help="shortcut option (the paper's A, B or C; none: plain)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the network's, 1000 or 10)")
    p.add_argument("--paper", action="store_true", help="the paper's ImageNet and CIFAR nets beside its figures")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def model_summary(name: str, input_size: int | None = None, **overrides: Any) -> dict[str, Any]:
    import torch

    from ..models.complexity import count_macs
    from ..evaluate.names import MAX_SIDE

    if input_size is not None and not 8 <= input_size <= MAX_SIDE:
        raise UsageError(f"--input-size must be from 8 to {MAX_SIDE} pixels, got {input_size}")
    model = build_model(name, **{k: v for k, v in overrides.items() if v is not None})
    spec = model.spec
    size = input_size or spec.data_config.input_size
    from ..utils.threads import single_threaded

    with torch.no_grad(), single_threaded():  # one batch-of-one pass to count; no activations kept, no threads needed
        c = count_macs(model, size)
    return {
        "name": name,
        "description": spec.description,
        "block": ("pre-activation " if spec.preact else "") + spec.block,
        "shortcut": spec.shortcut,
        "version": spec.version,
        "input_size": size,
        "params": c.params,
        "macs": c.macs,
        "stages": [
            {
                "stage": s.name,
                "output_size": f"{s.output_size[0]}x{s.output_size[1]}",
                "blocks": s.blocks,
                "channels": s.channels,
                "params": s.params,
                "macs": s.macs,
            }
            for s in c.stages
        ],
    }


def paper_rows() -> dict[str, list[dict[str, Any]]]:
    import copy

    return copy.deepcopy(_paper_rows())


@functools.lru_cache(maxsize=1)
def _paper_rows() -> dict[str, list[dict[str, Any]]]:
    """The figures are counted once per process (building and running ResNet-152 and -1202 takes a while)."""
    from ..utils.threads import single_threaded

    with single_threaded():  # batch-of-one passes that only count: threads only add waiting on a busy machine
        return _count_paper_rows()


def _count_paper_rows() -> dict[str, list[dict[str, Any]]]:
    from ..models.complexity import count_macs
    from ..models import create_model
    from ..reference import PAPER_CIFAR_ERR, PAPER_CIFAR_PARAMS_M, PAPER_IMAGENET_GMACS, TORCHVISION_GMACS, TORCHVISION_PARAMS

    imagenet = []
    for depth, paper in PAPER_IMAGENET_GMACS.items():
        v1 = count_macs(create_model(f"resnet{depth}", version="v1"), 224)
        v15 = count_macs(create_model(f"resnet{depth}"), 224)
        imagenet.append(
            {
                "name": f"resnet{depth}",
                "params": v15.params,
                "params_torchvision": TORCHVISION_PARAMS[depth],
                "gmacs_v1": round(v1.macs / 1e9, 3),
                "gmacs_paper": paper,
                "gmacs_v1.5": round(v15.macs / 1e9, 3),
                "gmacs_torchvision": TORCHVISION_GMACS[depth],
            }
        )
    cifar = []
    for depth, paper_params in PAPER_CIFAR_PARAMS_M.items():
        c = count_macs(create_model(f"resnet{depth}"), 32)
        cifar.append(
            {
                "name": f"resnet{depth}",
                "params": c.params,
                "params_paper_M": paper_params,
                "mmacs": round(c.macs / 1e6, 2),
                "paper_test_error": PAPER_CIFAR_ERR[depth],
            }
        )
    return {"imagenet": imagenet, "cifar": cifar}


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    if args.paper:
        data = paper_rows()
        if args.json:
            print_json(data)
            return 0
        t = Table(title="ImageNet networks (224x224): ours beside the paper's Table 1 and torchvision")
        for col in ("network", "params", "torchvision", "mult-adds v1", "paper", "mult-adds v1.5", "torchvision"):
            t.add_column(col, justify="left" if col == "network" else "right")
        for r in data["imagenet"]:
            t.add_row(
                r["name"], f"{r['params']:,}", f"{r['params_torchvision']:,}", f"{r['gmacs_v1']:.3f}G",
                f"{r['gmacs_paper']}G", f"{r['gmacs_v1.5']:.3f}G", f"{r['gmacs_torchvision']:.3f}G",
            )
        c = Table(title="CIFAR-10 networks (32x32, option A): ours beside the paper's Table 6")
        for col in ("network", "params", "paper", "mult-adds", "paper test error"):
            c.add_column(col, justify="left" if col == "network" else "right")
        for r in data["cifar"]:
            c.add_row(r["name"], f"{r['params'] / 1e6:.3f}M", f"{r['params_paper_M']}M", f"{r['mmacs']:.2f}M", f"{r['paper_test_error']}%")
        out = console()
        out.print(t)
        out.print(c)
        out.print(
            "v1 = stride in the first 1x1 of each bottleneck (paper); v1.5 = stride in the 3x3 (torchvision, our default).\n"
            "Multiply-adds are counted from the modules (convolutions and the classifier), never looked up."
        )
        return 0
    if not args.name:
        raise UsageError("give a model name (e.g. `resnet summary resnet50`) or --paper")
    s = model_summary(args.name, args.input_size, version=args.version, shortcut=args.shortcut, num_classes=args.num_classes)
    if args.json:
        print_json(s)
        return 0
    t = Table(title=f"{s['name']}: {s['description']} ({s['block']} blocks, shortcut {s['shortcut']}, {s['version']}), input {s['input_size']}px")
    for col in ("stage", "output size", "blocks", "channels", "params", "multiply-adds"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for st in s["stages"]:
        t.add_row(st["stage"], st["output_size"], str(st["blocks"] or ""), str(st["channels"]), f"{st['params']:,}", f"{st['macs'] / 1e6:,.2f}M")
    t.add_row("total", "", "", "", f"{s['params']:,}", f"{s['macs'] / 1e6:,.2f}M", style="bold")
    console().print(t)
    return 0
