"""``resnet eval`` and ``resnet predict`` on detection / segmentation runs (the commands dispatch here)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DataError, UsageError
from .common import console, print_json


def run_dense_eval(args: argparse.Namespace) -> int:
    from ..evaluate.dense import evaluate_dense_source
    from ..train.report import METRIC_LABELS

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be a positive integer, got {args.limit}")
    result = evaluate_dense_source(args.sources[0], args.data_dir, limit=args.limit)
    if args.json:
        print_json(result.as_dict())
        return 0
    con = console()
    con.print(f"[bold]{result.source}[/bold]: {result.task} ({result.head} on {result.backbone}), "
              f"{result.photos} Penn-Fudan test photos" + (f", {result.skipped} skipped" if result.skipped else ""))
    for key, label in METRIC_LABELS.items():
        if result.metrics.get(key) is not None:
            con.print(f"  {label:16s} {result.metrics[key]:6.2f} %")
    return 0


def run_dense_predict(args: argparse.Namespace) -> int:
    from ..evaluate.dense import predict_dense
    from ..data.scan import find_images

    if not args.out:
        raise UsageError("detection / segmentation runs draw their predictions: give --out DIR for the PNG files")
    if not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be a score from 0 to 1, got {args.threshold}")
    paths = find_images(args.inputs)
    if not paths:
        raise DataError(f"no image files found in {', '.join(args.inputs)}; give image files or folders that hold some")
    drawn, failed = predict_dense(args.source, paths, Path(args.out), threshold=args.threshold)
    for path, reason in failed:
        print(f"resnet predict: error: {path}: {reason}", file=sys.stderr)
    if args.json:
        print_json({"source": args.source, "predictions": [d.__dict__ for d in drawn],
                    "errors": [{"path": p, "error": r} for p, r in failed]})
    else:
        for d in drawn:
            print(f"{d.path} -> {d.out}  ({d.objects} {'detections' if isinstance(d.objects, int) else '% foreground'})")
    return 1 if failed else 0
