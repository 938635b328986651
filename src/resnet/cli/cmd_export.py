"""``resnet export``: a network to a ``torch.export`` package (.pt2), ONNX, OpenVINO IR or (deprecated) TorchScript,
loaded back in its runtime after export and compared with PyTorch."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import UsageError
from .common import add_allow_untrained, add_origin, examples, hidden_alias, print_json

RUNTIMES = {"pt2": "AOTInductor (torch._inductor.aoti_load_package)", "onnx": "ONNX Runtime",
            "openvino": "OpenVINO (CPU, f32)", "torchscript": "torch.jit.load"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..utils.modes import EXPORT_FORMATS, TORCHSCRIPT_REMOVED_IN

    p = sub.add_parser(
        "export",
        help="export to a PyTorch package (.pt2), ONNX or OpenVINO IR, verified against PyTorch (max abs logit difference)",
        description=(
            "Export SOURCE (our checkpoint or run folder, or a torchvision / timm / akamaster checkpoint). The format "
            "follows the file name (.pt2: torch.export + AOTInductor package; .onnx: ONNX; .xml: OpenVINO IR, with its "
            ".bin beside it; .pt, .pth, .ts: TorchScript, deprecated). The file is loaded back in its runtime and its "
            "logits compared with PyTorch's; it is written only if they agree within --atol. Class names, "
            "preprocessing, the exported input size and whether it is dynamic go into the file's metadata. "
            f"TorchScript export is deprecated (torch.jit is deprecated in PyTorch) and will be removed in resnet "
            f"{TORCHSCRIPT_REMOVED_IN}: use --format pt2."
        ),
        epilog=examples("resnet export runs/r20 --out r20.pt2 --dynamic-size",
                        "resnet export runs/r20 --out r20.onnx --dynamic-batch --dynamic-size",
                        "resnet export runs/r20 --out r20.xml --dynamic-batch --fold-bn"),
    )
    p.add_argument("source", metavar="SOURCE", help="checkpoint file or run folder (a model name with --random-weights)")
    p.add_argument("--format", default=None, choices=EXPORT_FORMATS,
                   help="output format (default: by the --out file name; it must agree with it); torchscript is deprecated")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the exported model (.pt2, .onnx, .xml, .pt)")
    p.add_argument("--random-weights", action="store_true",
                   help="SOURCE is a model name: export it untrained (to test a deployment pipeline, never to use)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="accept any batch size (checked on two batch sizes; a .pt2 package always accepts any)")
    p.add_argument("--dynamic-size", action="store_true",
                   help="accept any image height and width from 8 pixels (fully convolutional networks; checked at two sizes)")
    p.add_argument("--fold-bn", action="store_true", help="fold batch norms into the convolutions before exporting")
    p.add_argument("--input-size", type=int, default=None, help="input side in pixels (default: the network's, 224 ImageNet / 32 CIFAR)")
    p.add_argument("--batch-size", dest="batch", type=int, default=1, help="batch size of the example input (default 1)")
    hidden_alias(p, "--batch", "batch", type=int)
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed absolute logit difference (default 1e-4)")
    p.add_argument("--model", default=None, help="network name for checkpoints that do not carry one (e.g. resnet50)")
    add_origin(p)
    add_allow_untrained(p)
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace, fmt: str) -> None:
    from ..evaluate.names import MAX_SIDE
    from ..inference.graphs import MIN_DYNAMIC_SIDE

    if args.batch < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch}")
    low = MIN_DYNAMIC_SIDE
    if args.input_size is not None and not low <= args.input_size <= MAX_SIDE:
        raise UsageError(f"--input-size must be from {low} to {MAX_SIDE} pixels, got {args.input_size}")
    if args.opset is not None and fmt != "onnx":
        raise UsageError("--opset applies to --format onnx only")
    if not args.atol > 0:
        raise UsageError(f"--atol must be positive, got {args.atol}")


def run(args: argparse.Namespace) -> int:
    from ..deploy.export import export_network, format_for_path
    from ..evaluate.sources import resolve_source

    fmt = format_for_path(args.out, args.format)
    _check(args, fmt)
    member = resolve_source(args.source, model_name=args.model, checkpoint_source=args.checkpoint_source,
                            random_weights=args.random_weights, allow_untrained=args.allow_untrained)
    with warnings.catch_warnings(record=True) as caught:  # shown below as notes, one line each, never dropped
        warnings.simplefilter("always", FutureWarning)
        warnings.simplefilter("always", DeprecationWarning)
        report = export_network(member, args.out, fmt, input_size=args.input_size, batch=args.batch, opset=args.opset,
                                dynamic_batch=args.dynamic_batch, dynamic_size=args.dynamic_size, fold=args.fold_bn,
                                atol=args.atol)
    for note in dict.fromkeys(str(w.message).replace("`format` 'pt2'", "--format pt2") for w in caught):
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print_json({"source": args.source, "model": member.model_name, **report.as_dict()})
        return 0
    batch = "N" if report.dynamic_batch else str(args.batch)
    size = args.input_size or member.preprocess.crop_size
    side = "HxW" if args.dynamic_size else f"{size}x{size}"
    shapes = ", ".join("x".join(str(s) for s in shape) for shape in report.checked_shapes)
    print(
        f"exported {member.name} ({member.model_name}, input {batch}x{member.preprocess.channels}x{side}"
        f"{', BN folded' if args.fold_bn else ''}) to {report.path}\n"
        f"checked with {RUNTIMES[fmt]} on input(s) {shapes}: max |logit difference| vs PyTorch = {report.max_abs_diff:.2e} "
        f"(allowed {args.atol:g})"
    )
    return 0
