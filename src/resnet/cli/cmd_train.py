"""``resnet train``: train a network with a named recipe; checkpoints, metrics, curves and a results table
go to ``--out``. Under ``torchrun --nproc_per_node=N -m resnet train ...`` it runs DDP."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .common import add_device, examples


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..train.recipes import RECIPES

    recipes = ", ".join(f"{r.name}" for r in RECIPES.values())
    p = sub.add_parser(
        "train",
        help="train a network with one of the paper's recipes (checkpoints, metrics, curves, results table)",
        description=(
            "Train MODEL on a data set with a named, versioned recipe. Every recipe field can be overridden with "
            f"--set KEY=VALUE. Recipes: {recipes}."
        ),
        epilog=examples("resnet train resnet20 --data cifar10 --data-dir ../shared/data/cifar10 --recipe cifar-paper --out runs/r20",
                        "resnet train --data digits --set iterations=100 --out runs/digits"),
    )
    p.add_argument("model_pos", nargs="?", metavar="MODEL", help="network name (same as --model)")
    p.add_argument("--model", help="network name, e.g. resnet20, plain56, resnet50 (default: resnet20; resnet50 for imagenet)")
    p.add_argument("--data", default=None,
                   help="cifar10, cifar100, digits (embedded, no download), folder (small images in train/ and test/; photos of "
                   "any size with --recipe finetune or --init), imagenet (ImageNet layout train/ and val/, decoded per image); "
                   "pennfudan for --task detection / segmentation (default digits; pennfudan for dense tasks)")
    p.add_argument("--data-dir", help="where the data is: a CIFAR archive, its extracted folder or an ImageFolder tree")
    p.add_argument("--init", metavar="NAME[:TAG]|PATH",
                   help="fine-tune: start from named weights (resnet50, resnet50:timm:a1_in1k; `resnet weights list`), a "
                   "weights file or a run folder; the classifier is replaced when the classes differ. With --data folder "
                   "use --recipe finetune (photos in PHOTOS/train/<class>/, optional val/)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="with --init: accept weights that look untrained (batch-norm statistics or scales at their initial "
                        "values), refused otherwise")
    p.add_argument("--recipe", help="cifar-paper, imagenet-paper, cifar-fast, digits, finetune (default: by data set; "
                   "finetune with --init); NAME@N for an earlier version, e.g. cifar-fast@3")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set lr=0.05 --set iterations=2000 (repeatable)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="images per step, over all processes (default: the recipe's; same as --set batch_size=N)")
    p.add_argument("--out", type=Path, help="run folder (default runs/<model>-<data>)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and augmentation (default 0)")
    add_device(p, default=None)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint (starts fresh if none)")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out that already holds a run")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms only (slower on GPU)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image instead of skipping it")
    p.add_argument("--stop-after", type=int, metavar="N", help="checkpoint and stop after iteration N (continue later with --resume)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help="checkpoint and stop once this much time has passed")
    p.add_argument("--no-progress", action="store_true", help="print nothing but errors")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard event files")
    p.add_argument("--task", default="classification", choices=("classification", "detection", "segmentation"),
                   help="detection / segmentation: torchvision's Mask R-CNN / DeepLabV3 on MODEL as backbone, --data "
                   "pennfudan (recipes detection, segmentation; default MODEL resnet18)")
    p.add_argument("--pretrained", metavar="PATH", help=argparse.SUPPRESS)  # old spelling of --init for dense tasks
    p.add_argument("--list-recipes", action="store_true", help="print every recipe in full and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..train import RECIPES, TrainOptions, parse_overrides, train

    if args.list_recipes:
        for recipe in RECIPES.values():
            task = "" if recipe.task == "classification" else f" (--task {recipe.task})"
            print(f"{recipe.name} v{recipe.version}{task}: {recipe.description}\n{recipe.describe()}\n")
        return 0
    if args.model_pos and args.model and args.model_pos != args.model:
        raise UsageError(f"two network names given ({args.model_pos} and --model {args.model}); give one")
    _batch_size_as_override(args)
    if args.allow_untrained:  # read where --init is loaded (resnet.inference.load.refuse_untrained), in every process
        import os

        from ..inference.load import ALLOW_UNTRAINED_ENV

        os.environ[ALLOW_UNTRAINED_ENV] = "1"
    if args.data is None:
        args.data = "digits" if args.task == "classification" else "pennfudan"
    dense = args.task != "classification"
    if args.pretrained and not dense:
        raise UsageError("--pretrained is the dense tasks' old spelling of --init; use --init")
    opts = TrainOptions(
        model=args.model or args.model_pos, data=args.data, data_dir=args.data_dir, recipe=args.recipe,
        overrides=parse_overrides(args.overrides), out=args.out, seed=args.seed, device=args.device,
        resume=args.resume, overwrite=args.overwrite, deterministic=args.deterministic, progress=not args.no_progress,
        strict=args.strict, tensorboard=not args.no_tensorboard, stop_after=args.stop_after, time_limit=args.time_limit,
        init=args.init or (args.pretrained if dense else None), task=args.task,
        command=shlex.join(["resnet", *args.argv]),
    )
    summary = train(opts)
    return 0 if summary["finished"] or summary.get("stop_reason") else 1


def _batch_size_as_override(args: argparse.Namespace) -> None:
    """``--batch-size N`` is ``--set batch_size=N`` (the spelling eval, predict and bench use)."""
    from ..errors import UsageError

    if args.batch_size is None:
        return
    if any(item.partition("=")[0].strip().replace("-", "_") == "batch_size" for item in args.overrides):
        raise UsageError("--batch-size and --set batch_size=... both given; give one")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}")
    args.overrides.append(f"batch_size={args.batch_size}")

