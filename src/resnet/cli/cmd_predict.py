"""``resnet predict``: the most likely classes of image files, with their probabilities."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..evaluate.names import PROTOCOLS
from ..utils.modes import NONE, OPTIMIZE_MODES, is_eager
from ..explain import METHODS as EXPLAIN_METHODS
from .common import (add_allow_untrained, add_device, add_engine, add_origin, check_optimize_flags, examples,
                     load_options, print_json)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="class names and probabilities for images (files or folders)",
        description="Classify images with SOURCE (a checkpoint file or run folder); folders are searched for images. "
                    "Photos are read upright (EXIF orientation applied).",
        epilog=examples("resnet predict runs/r20 photo.jpg holiday/", "resnet predict runs/r20 photos/ --optimize int8 --json"),
    )
    p.add_argument("source", metavar="SOURCE", help="checkpoint file or run folder")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR", help="image files and/or folders of images")
    p.add_argument("--top", type=int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--protocol", default="center", choices=PROTOCOLS, help="test protocol (default center)")
    p.add_argument("--resize", type=int, default=None, help="override the shorter side images are resized to before cropping")
    p.add_argument("--crop", type=int, default=None, help="override the crop size")
    p.add_argument("--batch-size", type=int, default=64, help="images decoded and classified together (default 64)")
    p.add_argument("--model", default=None, help="network name for checkpoints that do not carry one")
    add_origin(p)
    add_allow_untrained(p)
    add_device(p, note="; the CPU with --optimize")
    p.add_argument("--optimize", default=NONE, choices=OPTIMIZE_MODES, help="run through resnet.deploy.optimize (CPU)")
    add_engine(p, "--optimize")
    p.add_argument("--calibration", default=None, metavar="IMAGE|DIR",
                   help="int8 and --engine other than ours: calibrate and check engines on these images (default: the "
                        "training data the run recorded; never the inputs)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--strict", action="store_true", help="refuse damaged images (decoded only with recovery: corrupt JPEG data, "
                   "truncated files) as errors, exit 1; by default they are predicted and marked damaged")
    p.add_argument("--explain", action="store_true", help="also write per image a PNG (photo, top-k, class-activation map) and index.html")
    p.add_argument("--method", default="gradcam", choices=EXPLAIN_METHODS, help="map drawn by --explain (default gradcam)")
    p.add_argument("--out", metavar="DIR", help="folder for pictures: --explain's PNGs and index.html (default ./explained), "
                   "or a detection / segmentation run's drawn photos")
    p.add_argument("--threshold", type=float, default=0.5, help="detection runs: lowest score drawn (default 0.5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate.predict import Failure
    from ..evaluate.requests import DrawnPredictions, PredictRequest, run_predict

    check_optimize_flags(args.optimize, args.engine, args.calibration)
    request = PredictRequest(args.source, tuple(args.inputs), top=args.top, protocol=args.protocol,
                             batch_size=args.batch_size, strict=args.strict, out=args.out, explain=args.explain,
                             threshold=args.threshold, load=load_options(args))
    result = run_predict(request)
    if isinstance(result, DrawnPredictions):
        return _print_drawn(result, args.json)
    member = result.member
    if not is_eager(args.optimize):
        print(f"resnet predict: --optimize {args.optimize} runs on {member.metadata['engine']}", file=sys.stderr)
    predictions, failures = [], []
    for item in result.items:
        if isinstance(item, Failure):
            failures.append(item)
            print(f"resnet predict: error: {item.error}", file=sys.stderr)
            continue
        predictions.append(item)
        if not args.json:
            shown = "  ".join(f"{name} {100 * p:.1f}%" for name, _, p in item.top)
            print(f"{item.path}  {shown}", flush=True)
        if item.damaged:
            print(f"resnet predict: warning: {item.path} is damaged ({item.damaged}); the answer is for what the decoder "
                  "recovered (--strict refuses such files)", file=sys.stderr, flush=True)
    if args.json:
        print_json(result.record(predictions, failures))
    if args.explain and predictions:
        from pathlib import Path

        from ..explain.report import explain_predictions

        index = explain_predictions(member, predictions, Path(args.out or "explained"), args.method, failures)
        print(f"resnet predict: {len(predictions)} explained picture(s) and {index}", file=sys.stderr)
    return 1 if failures else 0


def _print_drawn(result: Any, as_json: bool) -> int:
    """A detection / segmentation run's drawn photos (``DrawnPredictions``); exit status 1 when a photo failed."""
    for path, reason in result.failed:
        print(f"resnet predict: error: {path}: {reason}", file=sys.stderr)
    if as_json:
        print_json(result.record())
    else:
        for d in result.drawn:
            print(f"{d.path} -> {d.out}  ({d.objects} {'detections' if isinstance(d.objects, int) else '% foreground'})")
    return 1 if result.failed else 0
