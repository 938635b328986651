"""``resnet summary``: a per-stage table in the style of the paper's Table 1, or ``--paper``."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..models.data_config import default_input_size
from ..models.specs import SHORTCUT_OPTIONS
from .common import console, examples, hidden_alias, print_json

_IMAGENET, _CIFAR = default_input_size("imagenet"), default_input_size("cifar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary", help="per-stage architecture table with params and multiply-adds",
        description="A per-stage table of one network in the style of the paper's Table 1 (output size, blocks, "
                    "channels, parameters, multiply-adds), or with --paper the paper's networks beside its figures.",
        epilog=examples("resnet summary resnet50", "resnet summary resnet110 --json", "resnet summary --paper"),
    )
    p.add_argument("name", nargs="?", help="model name, e.g. resnet50 or resnet110")
    p.add_argument("--input-size", type=int, default=None, help=f"input side in pixels (default {_IMAGENET} ImageNet, {_CIFAR} CIFAR)")
    p.add_argument("--variant", dest="version", choices=("v1", "v1.5"), default=None,
                   help="bottleneck stride placement: v1 (the paper's, in the 1x1) or v1.5 (torchvision's, in the 3x3)")
    hidden_alias(p, "--version", "version", choices=("v1", "v1.5"))
    p.add_argument("--shortcut", choices=SHORTCUT_OPTIONS, default=None, help="shortcut option (the paper's A, B or C; none: plain)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the network's, 1000 or 10)")
    p.add_argument("--paper", action="store_true", help="the paper's ImageNet and CIFAR nets beside its figures")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..analysis.summary import model_summary, paper_rows

    if args.paper:
        data = paper_rows()
        if args.json:
            print_json(data)
            return 0
        t = Table(title=f"ImageNet networks ({_IMAGENET}x{_IMAGENET}): ours beside the paper's Table 1 and torchvision")
        for col in ("network", "params", "torchvision", "mult-adds v1", "paper", "mult-adds v1.5", "torchvision"):
            t.add_column(col, justify="left" if col == "network" else "right")
        for r in data["imagenet"]:
            t.add_row(
                r["name"], f"{r['params']:,}", f"{r['params_torchvision']:,}", f"{r['gmacs_v1']:.3f}G",
                f"{r['gmacs_paper']}G", f"{r['gmacs_v1.5']:.3f}G", f"{r['gmacs_torchvision']:.3f}G",
            )
        c = Table(title=f"CIFAR-10 networks ({_CIFAR}x{_CIFAR}, option A): ours beside the paper's Table 6")
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
