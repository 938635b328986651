"""``resnet eval``: top-1 / top-5 error of one or more networks under a test protocol of the paper."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, Callable, Iterator

from ..errors import UsageError
from ..evaluate.names import MAX_SIDE, PROTOCOLS
from ..utils.modes import NONE, OPTIMIZE_MODES
from .common import (add_allow_untrained, add_device, add_engine, add_origin, check_optimize_flags, console, examples,
                     load_options, print_json)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="test error of checkpoints (or an ensemble of them) under center / flip / shift / 10crop / multiscale testing",
        description=(
            "Evaluate SOURCE(s): our checkpoints (file or run folder) or torchvision / timm / akamaster checkpoints. "
            "Several SOURCEs are also evaluated as an ensemble (softmax averaged). A run folder needs no other "
            "flag: it is evaluated on the test split of the data it was trained on."
        ),
        epilog=examples("resnet eval runs/r20", "resnet eval runs/r20 runs/r20-seed1 --data cifar10 --protocol flip"),
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="checkpoint file or run folder")
    p.add_argument("--data", default=None, help="data set name: cifar10, cifar100, digits, folder (small images) or imagenet")
    p.add_argument("--data-dir", default=None, help="data folder (ImageFolder tree, or the data set's archive folder)")
    p.add_argument("--split", default=None, help="split to evaluate (default test; in a folder without test/: val)")
    p.add_argument("--protocol", default="center", choices=PROTOCOLS, help="test protocol (default center)")
    p.add_argument("--scales", nargs="+", default=None, help="multiscale: shorter sides in pixels, e.g. 224 256 384 480 640 (or 224,256)")
    p.add_argument("--shift", type=int, default=None, help="shift: pixels each view is moved diagonally (default crop / 16, 2 for CIFAR)")
    p.add_argument("--resize", type=int, default=None, help="override the shorter side images are resized to before cropping")
    p.add_argument("--crop", type=int, default=None, help="override the crop size")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    p.add_argument("--limit", type=int, default=None, help="evaluate N images spread evenly over the data (every len/N-th), for quick runs")
    p.add_argument("--model", default=None, help="network name for checkpoints that do not carry one (e.g. resnet50)")
    add_origin(p)
    add_allow_untrained(p)
    add_device(p, note="; the CPU with --optimize")
    p.add_argument("--optimize", default=NONE, choices=OPTIMIZE_MODES, help="run through resnet.deploy.optimize (CPU)")
    add_engine(p, "--optimize")
    p.add_argument("--calibration", default=None, metavar="IMAGE|DIR",
                   help="int8 and --engine other than ours: calibrate and check engines on these images (default: the "
                        "training data the run recorded; never the test set)")
    p.add_argument("--plots", default=None, metavar="DIR", help="write confusion-matrix PNGs to DIR")
    p.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    p.set_defaults(func=run)


def parse_scales(values: list[str] | None) -> list[int] | None:
    if not values:
        return None
    scales: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or not 1 <= int(part) <= MAX_SIDE:
                raise UsageError(f"--scales takes pixel sizes from 1 to {MAX_SIDE}, got {part!r}")
            scales.append(int(part))
    return scales or None


def run(args: argparse.Namespace) -> int:
    from ..evaluate.dense import DenseEval
    from ..evaluate.plots import plot_report
    from ..evaluate.requests import EvalRequest, run_eval

    scales = parse_scales(args.scales)
    if scales and args.protocol != "multiscale":
        raise UsageError("--scales applies to --protocol multiscale only")
    if args.shift is not None and args.protocol != "shift":
        raise UsageError("--shift applies to --protocol shift only")
    check_optimize_flags(args.optimize, args.engine, args.calibration)
    request = EvalRequest(tuple(args.sources), data=args.data, data_dir=args.data_dir, split=args.split,
                          protocol=args.protocol, scales=tuple(scales) if scales else None, shift=args.shift,
                          batch_size=args.batch_size, limit=args.limit, load=load_options(args))
    with _progress(show=not args.json and sys.stderr.isatty()) as progress:
        report = run_eval(request, progress)
    if isinstance(report, DenseEval):
        if args.json:
            print_json(report.as_dict())
        else:
            _print_dense(report)
        return 0
    plots = plot_report(report, args.plots) if args.plots else []
    if args.json:
        print_json({**report.as_dict(), "plots": [str(p) for p in plots]})
    else:
        _print_report(report, plots)
    return 0


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on a terminal (``update(done, total)``), else nothing."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("eval", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _print_dense(result: Any) -> None:
    from ..train.report import METRIC_LABELS

    con = console()
    con.print(f"[bold]{result.source}[/bold]: {result.task} ({result.head} on {result.backbone}), "
              f"{result.photos} Penn-Fudan test photos" + (f", {result.skipped} skipped" if result.skipped else ""))
    for key, label in METRIC_LABELS.items():
        if result.metrics.get(key) is not None:
            con.print(f"  {label:16s} {result.metrics[key]:6.2f} %")


def _print_report(report: Any, plots: list[Any]) -> None:
    from rich.table import Table

    con = console()
    results = report.results
    con.print(f"[bold]{report.data}[/bold]: {results[0].metrics.count} images, protocol {report.protocol}")
    summary = Table(show_edge=False)
    for col in ("source", "model", "protocol", "top-1 err %", f"top-{results[0].metrics.topk} err %", "images/s"):
        summary.add_column(col, justify="right" if "%" in col or col == "images/s" else "left")
    for r in results:
        model = r.model + (f" ({r.extra['optimize']} on {r.extra['engine']})" if r.extra.get("optimize") else "")
        summary.add_row(r.name, model, r.protocol, f"{r.metrics.top1_error:.2f}", f"{r.metrics.top5_error:.2f}", f"{r.images_per_s:,.0f}")
    con.print(summary)

    per_class = Table(title="per-class accuracy %", show_edge=False)
    per_class.add_column("class")
    for r in results:
        per_class.add_column(r.name, justify="right")
    accs = [r.metrics.per_class_accuracy() for r in results]
    rows = list(range(len(report.classes)))
    from ..inference.per_class import PER_CLASS_PRINTED

    if len(rows) > PER_CLASS_PRINTED:  # a 1000-class table helps no one: show the 25 hardest classes of the last result
        last = accs[-1]
        rows = sorted((i for i in rows if last[i] is not None), key=lambda i: last[i])[:25]  # type: ignore[arg-type,return-value]
        per_class.title = "per-class accuracy %, 25 hardest classes"
    for i in rows:
        per_class.add_row(report.classes[i], *("-" if a[i] is None else f"{a[i]:.1f}" for a in accs))
    con.print(per_class)
    for p in plots:
        con.print(f"wrote {p}")
