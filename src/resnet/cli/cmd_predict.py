"""``resnet predict``: the most likely classes of image files, with their probabilities."""

from __future__ import annotations

import argparse
import sys

from ..errors import DataError, UsageError
from ..evaluate.names import PROTOCOLS
from ..utils.modes import NONE, OPTIMIZE_MODES, is_eager
from ..explain import METHODS as EXPLAIN_METHODS
from .common import add_allow_untrained, add_device, add_engine, add_origin, apply_sizes, check_optimize_flags, examples, print_json, run_device


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
    from ..evaluate import get_protocol, resolve_source
    from ..inference.prepare import prepare
    from ..data.scan import find_images
    from ..evaluate.predict import Failure, predict_files
    from ..evaluate.dense import dense_task_of

    if dense_task_of(args.source):
        from .dense import run_dense_predict

        return run_dense_predict(args)
    if args.out and not args.explain:
        raise UsageError("--out is where --explain writes its pictures (and where detection / segmentation runs draw "
                         "theirs); add --explain, or leave --out out")
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    member = resolve_source(args.source, model_name=args.model, checkpoint_source=args.checkpoint_source,
                            allow_untrained=args.allow_untrained)
    member.place(run_device(args.device, args.optimize))
    apply_sizes(member, args.resize, args.crop)
    paths = find_images(args.inputs)
    if not paths:
        raise DataError(f"no image files found in {', '.join(args.inputs)}; give image files or folders that hold some")
    check_optimize_flags(args.optimize, args.engine, args.calibration)
    if not is_eager(args.optimize):
        # chosen at --batch-size, never at the number of files: a photo's answer must not depend on what else is passed
        prepare(member, args.optimize, engine=args.engine, calibration=args.calibration, batch=args.batch_size)
        print(f"resnet predict: --optimize {args.optimize} runs on {member.metadata['engine']}", file=sys.stderr)

    protocol = get_protocol(args.protocol)
    predictions, failures = [], []
    for item in predict_files(member, paths, top=args.top, batch_size=args.batch_size, protocol=protocol, strict=args.strict):
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
        print_json(
            {
                "source": args.source,
                "model": member.model_name,
                "protocol": args.protocol,
                "engine": member.metadata.get("engine", "pytorch eager"),
                "predictions": [p.as_dict() for p in predictions],
                "errors": [f.as_dict() for f in failures],
            }
        )
    if args.explain and predictions:
        from pathlib import Path

        from ..explain.report import explain_predictions

        index = explain_predictions(member, predictions, Path(args.out or "explained"), args.method, failures)
        print(f"resnet predict: {len(predictions)} explained picture(s) and {index}", file=sys.stderr)
    return 1 if failures else 0
