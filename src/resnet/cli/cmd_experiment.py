"""``resnet experiment``: the paper's experiments, each writing PNG figures, a markdown table and
the raw JSON into ``--out DIR``.

- ``degradation``: plain vs residual nets of several depths trained alike (Fig. 6);
- ``depth-table``: test error against depth, mean ± std over runs (Table 6; Table 2 on ImageNet-layout data);
- ``responses``: std of the 3x3 layers' responses (Fig. 7);
- ``gradients``: per-layer gradient norms with and without BN (Sec. 4.1);
- ``backbone-degradation``: the same study on a dense task (Penn-Fudan).

Each subcommand builds its experiment's config (:mod:`resnet.analysis.configs`), calls the experiment
(:mod:`resnet.analysis`) and prints the files it wrote; the options' defaults are the configs'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..analysis.configs import (CIFAR_DEPTHS, TABLE2_DEPTHS, TABLE_DEPTHS, BackboneStudyConfig, DegradationConfig,
                                DepthTableConfig, ExperimentResult, GradientsConfig, ResponsesConfig)
from ..analysis.runs.budgets import BUDGETS, DEFAULT_BUDGET, budgets_help
from ..errors import UsageError
from .common import examples


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="rerun the paper's experiments (degradation, depth table, layer responses, gradient flow) and draw its figures",
        description="Rerun one of the paper's experiments; figures (PNG), a markdown table and raw JSON go to --out DIR.",
        epilog=examples("resnet experiment degradation --budget tiny --data digits",
                        "resnet experiment gradients --depths 20 56 --steps 0"),
    )
    exp = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", parser_class=type(p))
    exp.required = True
    _add_degradation(exp)
    _add_depth_table(exp)
    _add_responses(exp)
    _add_gradients(exp)
    _add_backbone_degradation(exp)


def _add_training_options(p: argparse.ArgumentParser, default_depths: tuple[int, ...], imagenet_depths: str = "") -> None:
    p.add_argument("--data", default="cifar10", help="data set name (cifar10, cifar100, digits, folder" + (", imagenet" if imagenet_depths else "") + "; default cifar10)")
    p.add_argument("--data-dir", default=None, help="data folder, e.g. an ImageFolder tree DATA/{train,test}/<class>/*.png")
    p.add_argument(
        "--depths", type=int, nargs="+", default=None,
        help=f"CIFAR depths 6n+2 (default {' '.join(map(str, default_depths))}){imagenet_depths}",
    )
    p.add_argument(
        "--budget", default=DEFAULT_BUDGET, choices=tuple(BUDGETS), help=budgets_help().replace("%", "%%"))
    p.add_argument("--iterations", type=int, default=None, help="override the budget's iteration count (lr ÷10 at 50%% and 75%%)")
    p.add_argument("--seed", type=int, default=0, help="seed shared by every network (default 0)")
    p.add_argument("--parallel", type=int, default=1, help="train N networks at once as subprocesses (default 1: one after another)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="recipe field override passed to every training run")
    p.add_argument("--plot-only", action="store_true", help="redraw the figure and table from the run folders already in --out")


def _add_degradation(exp: argparse._SubParsersAction) -> None:
    p = exp.add_parser(
        "degradation", help="plain vs residual nets trained alike: training and test error against iterations (Fig. 6)",
        description="Train plain and residual networks of the same depths alike and plot their training and test error "
                    "against iterations, as the paper's Figure 6.",
        epilog=examples("resnet experiment degradation --data cifar10 --data-dir ../shared/data/cifar10",
                        "resnet experiment degradation --budget tiny --data digits --depths 8 14"),
    )
    _add_training_options(p, CIFAR_DEPTHS)
    _add_out(p, DegradationConfig)
    p.set_defaults(func=_degradation)


def _add_depth_table(exp: argparse._SubParsersAction) -> None:
    p = exp.add_parser(
        "depth-table",
        help="test error against depth beside the paper's Table 6 (mean ± std over --runs); Table 2 with --data imagenet",
        description="Train ResNets of several depths and tabulate their test error beside the paper's Table 6 "
                    "(Table 2 with --data imagenet).",
        epilog=examples("resnet experiment depth-table --data cifar10 --data-dir ../shared/data/cifar10 --runs 2",
                        "resnet experiment depth-table --budget tiny --data digits --depths 8 14"),
    )
    _add_training_options(p, TABLE_DEPTHS, f"; with --data imagenet {' '.join(map(str, TABLE2_DEPTHS))} (Table 2)")
    p.add_argument("--runs", type=int, default=1, help="independent runs (seeds) per depth; the table reports mean ± std (default 1)")
    p.add_argument("--plain", action="store_true", help="train the plain twins too and list them beside the ResNets (always on with --data imagenet)")
    _add_out(p, DepthTableConfig)
    p.set_defaults(func=_depth_table)


def _add_responses(exp: argparse._SubParsersAction) -> None:
    p = exp.add_parser(
        "responses",
        help="std of each 3x3 layer's response after BN, in network order and sorted (Fig. 7)",
        description=(
            "SOURCE: an akamaster .th file (network read off the file name), one of our checkpoints or run folders, or a "
            "model name followed by its --weights. Each network sees the test images under its own normalisation."
        ),
        epilog=examples("resnet experiment responses runs/resnet20 runs/plain20 --data cifar10 --limit 500",
                        "resnet experiment responses resnet56 --weights resnet56-4bfd9763.th --data cifar10"),
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="checkpoint file, run folder, or model name (with --weights)")
    p.add_argument("--weights", action="append", default=[], metavar="FILE", help="weights for a model-name SOURCE (one per model name, in order)")
    p.add_argument("--data", default=None, help="data set name (cifar10, digits, ...); or give only --data-dir for an image folder")
    p.add_argument("--data-dir", default=None, help="data folder, e.g. DATA/test/<class>/*.png")
    p.add_argument("--split", default="test", help="split to measure on (default test)")
    p.add_argument("--limit", type=int, default=None, help="use N test images spread evenly over the split (default: all)")
    p.add_argument("--batch-size", type=int, default=ResponsesConfig.batch_size, help=f"images per batch (default {ResponsesConfig.batch_size})")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    _add_out(p, ResponsesConfig)
    p.set_defaults(func=_responses)


def _add_gradients(exp: argparse._SubParsersAction) -> None:
    p = exp.add_parser(
        "gradients",
        help="per-layer gradient norms of plain vs residual nets at init and after K steps, with (and --no-bn: without) BN",
        description="Measure per-layer gradient norms of plain and residual networks at initialisation and after "
                    "--steps SGD steps, with BatchNorm (and with --no-bn without it).",
        epilog=examples("resnet experiment gradients --depths 20 56 --steps 0", "resnet experiment gradients --no-bn --data digits"),
    )
    p.add_argument("--depths", type=int, nargs="+", default=list(GradientsConfig.depths),
                   help=f"CIFAR depths 6n+2 (default {' '.join(map(str, GradientsConfig.depths))})")
    p.add_argument("--no-bn", action="store_true", help="also measure every network with BatchNorm replaced by the identity (second row)")
    g = GradientsConfig
    p.add_argument("--steps", type=int, default=g.steps, help=f"SGD steps between the two measurements (default {g.steps}; 0: only at init)")
    p.add_argument("--batch-size", type=int, default=g.batch_size, help=f"images per batch (default {g.batch_size})")
    p.add_argument("--lr", type=float, default=g.lr, help=f"learning rate with BN (default {g.lr:g}, the paper's; nets of 110 layers or more use a tenth, see --no-warmup)")
    p.add_argument(
        "--no-warmup", dest="warmup", action="store_false",
        help="train nets of 110+ layers at --lr too, instead of the paper's warm-up rate (--lr / 10) that the steps measured here fall into",
    )
    p.add_argument("--lr-no-bn", type=float, default=g.lr_no_bn, help=f"learning rate without BN (default {g.lr_no_bn:g}, the paper's warm-up rate)")
    p.add_argument("--data", default=None, help="data set name (cifar10, digits, ...); or give only --data-dir for an image folder")
    p.add_argument(
        "--data-dir", default=None,
        help="data folder; without --data, an image folder DATA/train/<class>/* of which only the images needed are read",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    _add_out(p, GradientsConfig)
    p.set_defaults(func=_gradients)


def _add_backbone_degradation(exp: argparse._SubParsersAction) -> None:
    p = exp.add_parser(
        "backbone-degradation",
        help="the degradation study on a dense task: DeepLabV3 (and Mask R-CNN) on ResNet vs plain backbones, Penn-Fudan",
        description="Train the same segmenter (--tasks detection: also the same detector) on resnetD and plainD backbones "
        "for each depth D, alike and from scratch; table, curves and a picture of predictions go to --out.",
        epilog=examples("resnet experiment backbone-degradation --data-dir ../shared/data/pennfudan --depths 18 34 "
                        "--out docs/results/backbone"),
    )
    p.add_argument("--data-dir", required=True, help="the Penn-Fudan folder, e.g. ../shared/data/pennfudan")
    p.add_argument("--depths", type=int, nargs="+", default=list(BackboneStudyConfig.depths),
                   help=f"ImageNet-style depths (default {' '.join(map(str, BackboneStudyConfig.depths))})")
    p.add_argument("--tasks", nargs="+", default=list(BackboneStudyConfig.tasks), choices=("segmentation", "detection"),
                   help="dense tasks to study (default segmentation)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe field override for every run, e.g. --set iterations=300 --set image_size=128")
    p.add_argument("--seed", type=int, default=0, help="seed shared by every network (default 0)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--pretrained", type=Path, default=None, metavar="DIR",
                   help="start each backbone from DIR/<name> (run folder), DIR/<name>.safetensors or .pth (default: from scratch)")
    p.add_argument("--plot-only", action="store_true", help="redraw the table and figures from the run folders in --out")
    _add_out(p, BackboneStudyConfig)
    p.set_defaults(func=_backbone_degradation)


def _add_out(p: argparse.ArgumentParser, config: type) -> None:
    p.add_argument("--out", default=str(config.out), help=f"output folder (default {config.out})")  # type: ignore[attr-defined]


# -- running: options -> config -> library -> printed files ---------------------------------------
def _training_fields(args: argparse.Namespace) -> dict[str, Any]:
    return dict(data=args.data, data_dir=args.data_dir, depths=tuple(args.depths) if args.depths else None,
                budget=args.budget, iterations=args.iterations, seed=args.seed, parallel=args.parallel,
                device=args.device, overrides=tuple(args.overrides), plot_only=args.plot_only, out=Path(args.out))


def _degradation(args: argparse.Namespace) -> int:
    from ..analysis import DegradationConfig, run_degradation

    return _report(run_degradation(DegradationConfig(**_training_fields(args)), progress=_say))


def _depth_table(args: argparse.Namespace) -> int:
    from ..analysis import DepthTableConfig, run_depth_table

    config = DepthTableConfig(**_training_fields(args), runs=args.runs, plain=args.plain)
    return _report(run_depth_table(config, progress=_say))


def _responses(args: argparse.Namespace) -> int:
    from ..analysis import ResponsesConfig, run_responses

    config = ResponsesConfig(
        sources=tuple(args.sources), weights=tuple(args.weights), data=args.data, data_dir=args.data_dir, split=args.split,
        limit=args.limit, batch_size=args.batch_size, device=args.device, out=Path(args.out),
    )
    return _report(run_responses(config, progress=_say))


def _gradients(args: argparse.Namespace) -> int:
    from ..analysis import GradientsConfig, run_gradients

    config = GradientsConfig(
        data=args.data, data_dir=args.data_dir, depths=tuple(args.depths), no_bn=args.no_bn, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, lr_no_bn=args.lr_no_bn, seed=args.seed,
        device=args.device, out=Path(args.out),
    )
    return _report(run_gradients(config, progress=_say))


def _backbone_degradation(args: argparse.Namespace) -> int:
    import shlex

    from ..analysis import BackboneStudyConfig, run_backbone_degradation

    config = BackboneStudyConfig(
        data_dir=args.data_dir, depths=tuple(args.depths), tasks=tuple(args.tasks), overrides=tuple(args.overrides),
        seed=args.seed, device=args.device, pretrained=args.pretrained, plot_only=args.plot_only, out=Path(args.out),
        command=shlex.join(["resnet", *args.argv]),
    )
    result = run_backbone_degradation(config, progress=_say)
    for path in result.files:
        print(f"wrote {path}")
    return 0 if result.finished else 1  # the study names no unfinished run: its table shows the iterations reached


def _report(result: ExperimentResult) -> int:
    """``wrote FILE`` for each file; each unfinished run on stderr; exit status 1 when any run did not finish."""
    for path in result.files:
        print(f"wrote {path}")
    if isinstance(result.data, dict) and result.data.get("verdict"):
        print(result.data["verdict"])
    for name, reason in result.unfinished:
        _say(f"{name} did not finish: {reason} (rerun the same command to resume it)")
    return 0 if result.finished else 1


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

