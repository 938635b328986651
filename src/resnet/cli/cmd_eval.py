"""``resnet eval``: top-1 / top-5 error of one or more networks under a test protocol of the paper."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UsageError
from ..evaluate.names import MAX_SIDE, PROTOCOLS
from ..utils.modes import NONE, OPTIMIZE_MODES, is_eager
from .common import add_allow_untrained, add_device, add_engine, add_origin, apply_sizes, check_optimize_flags, console, examples, print_json, run_device


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
    from ..evaluate import get_protocol, resolve_source
    from ..evaluate.data import data_or_recorded, open_scored_data
    from ..evaluate.dense import dense_task_of

    if len(args.sources) == 1 and dense_task_of(args.sources[0]):
        from .dense import run_dense_eval

        return run_dense_eval(args)

    scales = parse_scales(args.scales)
    if scales and args.protocol != "multiscale":
        raise UsageError("--scales applies to --protocol multiscale only")
    if args.shift is not None and args.protocol != "shift":
        raise UsageError("--shift applies to --protocol shift only")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}")
    protocol = get_protocol(args.protocol, scales, args.shift)
    members = [resolve_source(s, model_name=args.model, checkpoint_source=args.checkpoint_source,
                              allow_untrained=args.allow_untrained).place(run_device(args.device, args.optimize))
               for s in args.sources]
    channels = members[0].preprocess.channels
    data_name, data_dir = data_or_recorded(args.data, args.data_dir, members[0])
    data = open_scored_data(data_name, data_dir, args.split, members[0], limit=args.limit, channels=channels,
                            recorded=args.data is None and args.data_dir is None)
    for m in members:
        apply_sizes(m, args.resize, args.crop)
    check_optimize_flags(args.optimize, args.engine, args.calibration)
    if not is_eager(args.optimize):
        from ..inference.prepare import prepare

        for m in members:
            prepare(m, args.optimize, engine=args.engine, calibration=args.calibration, batch=args.batch_size)

    show_progress = not args.json and sys.stderr.isatty()
    report = _run_with_progress(members, data, protocol, args.batch_size, show_progress)
    plots = _write_plots(report, args.plots) if args.plots else []
    if args.json:
        out = report.as_dict()
        out["plots"] = [str(p) for p in plots]
        print_json(out)
    else:
        _print_report(report, plots)
    return 0


def _run_with_progress(members: list[Any], data: Any, protocol: Any, batch_size: int, show: bool) -> Any:
    from ..evaluate import evaluate

    if not show:
        return evaluate(members, data, protocol, batch_size=batch_size)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("eval", total=len(data))
        return evaluate(members, data, protocol, batch_size=batch_size, progress=lambda n: bar.update(task, completed=n))


def _write_plots(report: Any, folder: str) -> list[Any]:
    from pathlib import Path

    from ..evaluate.plots import plot_confusion, safe_filename

    out = []
    for r in report.results:
        title = f"{r.name} — {report.protocol}, top-1 error {r.metrics.top1_error:.2f}%"
        out.append(plot_confusion(r.metrics.confusion, report.classes, Path(folder) / f"confusion_{safe_filename(r.name)}.png", title))
    return out


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
