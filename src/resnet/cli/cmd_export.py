"""``resnet export``: a network to ONNX or TorchScript, run once after export and compared with PyTorch."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .common import add_allow_untrained, add_origin, examples, hidden_alias, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export to ONNX or TorchScript, verified against PyTorch (max abs logit difference)",
        description=(
            "Export SOURCE (our checkpoint or run folder, or a torchvision / timm / akamaster checkpoint). The format "
            "follows the file name (.onnx: ONNX; .pt, .pth, .ts: TorchScript). The file is run once in its runtime "
            "(ONNX Runtime for ONNX) and its logits compared with PyTorch's; it is written only if they agree within "
            "--atol. Class names and preprocessing go into the file's metadata."
        ),
        epilog=examples("resnet export runs/r20 --out r20.onnx", "resnet export runs/r20 --out r20.pt --dynamic-batch --fold-bn"),
    )
    p.add_argument("source", metavar="SOURCE", help="checkpoint file or run folder (a model name with --random-weights)")
    p.add_argument("--format", default=None, choices=("onnx", "torchscript"),
                   help="output format (default: by the --out file name; it must agree with it)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the exported model (.onnx, .pt, .pth, .ts)")
    p.add_argument("--random-weights", action="store_true",
                   help="SOURCE is a model name: export it untrained (to test a deployment pipeline, never to use)")
    p.add_argument("--dynamic-batch", action="store_true", help="accept any batch size (checked on two batch sizes)")
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


def run(args: argparse.Namespace) -> int:
    import torch

    from ..deploy.export import export, format_for_path
    from ..evaluate.names import MAX_SIDE
    from ..evaluate.sources import resolve_source

    if args.batch < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch}")
    fmt = format_for_path(args.out, args.format)
    if args.input_size is not None and not 8 <= args.input_size <= MAX_SIDE:
        raise UsageError(f"--input-size must be from 8 to {MAX_SIDE} pixels, got {args.input_size}")
    if args.opset is not None and fmt != "onnx":
        raise UsageError("--opset applies to --format onnx only")
    if not args.atol > 0:
        raise UsageError(f"--atol must be positive, got {args.atol}")
    member = resolve_source(args.source, model_name=args.model, checkpoint_source=args.checkpoint_source,
                            random_weights=args.random_weights, allow_untrained=args.allow_untrained)
    size = args.input_size or member.preprocess.crop_size
    example = torch.randn(args.batch, member.preprocess.channels, size, size, generator=torch.Generator().manual_seed(0))
    metadata = {"classes": member.class_names(), "preprocess": member.preprocess.as_dict(), "source_kind": member.kind,
                **{k: member.metadata[k] for k in ("dataset", "recipe", "step") if k in member.metadata}}
    kwargs: dict[str, object] = {"example_input": example, "dynamic_batch": args.dynamic_batch, "fold": args.fold_bn,
                                 "atol": args.atol, "metadata": metadata}
    if fmt == "onnx":
        kwargs["opset"] = args.opset
    report = export(member.model, args.out, fmt, **kwargs)
    if args.json:
        print_json({"source": args.source, "model": member.model_name, **report.as_dict()})
        return 0
    runtime = "ONNX Runtime" if fmt == "onnx" else "torch.jit.load"
    batches = ", ".join(str(b) for b in report.batch_sizes)
    print(
        f"exported {member.name} ({member.model_name}, input {'N' if args.dynamic_batch else args.batch}x"
        f"{member.preprocess.channels}x{size}x{size}{', BN folded' if args.fold_bn else ''}) to {report.path}\n"
        f"checked with {runtime} on batch size(s) {batches}: max |logit difference| vs PyTorch = {report.max_abs_diff:.2e} "
        f"(allowed {args.atol:g})"
    )
    return 0
