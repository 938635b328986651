"""``resnet predict``: the most likely classes of image files, with their probabilities."""

from __future__ import annotations

import argparse
import sys

from ..errors import DataError, UsageError
from ..evaluate.protocols import PROTOCOLS
from ..explain import METHODS as EXPLAIN_METHODS
from .common import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="class names and probabilities for images (files or folders)",
        description="Classify images with SOURCE (checkpoint file, run folder or model name); folders are searched for images.",
    )
    p.add_argument("source", metavar="SOURCE", help="checkpoint file, run folder or model name")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR", help="image files and/or folders of images")
    p.add_argument("--top", type=int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--protocol", default="center", choices=PROTOCOLS, help="test protocol (default center)")
    p.add_argument("--batch-size", type=int, default=64, help="images decoded and classified together (default 64)")
    p.add_argument("--model", default=None, help="network name for checkpoints that do not carry one")
    p.add_argument("--source", dest="checkpoint_source", default="auto", choices=("auto", "resnet", "torchvision", "timm", "akamaster"))
    p.add_argument("--optimize", default="none", choices=("none", "fp32", "bf16", "int8"), help="run through resnet.deploy.optimize")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--explain", action="store_true", help="also write per image a PNG (photo, top-k, class-activation map) and index.html")
    p.add_argument("--method", default="gradcam", choices=EXPLAIN_METHODS, help="map drawn by --explain (default gradcam)")
    p.add_argument("--out", default="explained", help="folder for the --explain pictures (default ./explained)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate import apply_optimize, get_protocol, resolve_source
    from ..evaluate.images import expand_inputs, read_image
    from ..evaluate.predict import Failure, predict_files
    from ..evaluate.preprocess import normalize
    from ..evaluate.protocols import center_view

    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    member = resolve_source(args.source, model_name=args.model, checkpoint_source=args.checkpoint_source)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise DataError(f"no image files found in {', '.join(args.inputs)}; give image files or folders that hold some")
    if args.optimize != "none":
        calibration = None
        if args.optimize == "int8":
            images = []
            for p in paths[:32]:
                try:
                    images.append(center_view(read_image(p, member.preprocess.channels)[None], member.preprocess)[0])
                except DataError:
                    continue  # reported when the file's turn comes
            if not images:
                raise DataError("int8 calibration needs at least one readable image among the inputs")
            import torch

            calibration = normalize(torch.stack(images), member.preprocess)
        apply_optimize(member, args.optimize, calibration)

    protocol = get_protocol(args.protocol)
    predictions, failures = [], []
    for item in predict_files(member, paths, top=args.top, batch_size=args.batch_size, protocol=protocol):
        if isinstance(item, Failure):
            failures.append(item)
            print(f"resnet predict: error: {item.error}", file=sys.stderr)
            continue
        predictions.append(item)
        if not args.json:
            shown = "  ".join(f"{name} {100 * p:.1f}%" for name, _, p in item.top)
            print(f"{item.path}  {shown}", flush=True)
    if args.json:
        print_json(
            {
                "source": args.source,
                "model": member.model_name,
                "protocol": args.protocol,
                "predictions": [p.as_dict() for p in predictions],
                "errors": [f.as_dict() for f in failures],
            }
        )
    if args.explain and predictions:
        from pathlib import Path

        from ..explain.report import explain_predictions

        index = explain_predictions(member, predictions, Path(args.out), args.method, failures)
        print(f"resnet predict: {len(predictions)} explained picture(s) and {index}", file=sys.stderr)
    return 1 if failures else 0
