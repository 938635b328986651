"""``resnet experiment``: the paper's experiments, each writing PNG figures, a markdown table and
the raw JSON into ``--out DIR``.

- ``degradation``: plain vs residual nets of several depths trained alike (Fig. 6);
- ``depth-table``: test error against depth, mean ± std over runs (Table 6; Table 2 on ImageNet-layout data);
- ``responses``: std of the 3x3 layers' responses (Fig. 7);
- ``gradients``: per-layer gradient norms with and without BN (Sec. 4.1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .common import examples

DEFAULT_DEPTHS = [20, 32, 44, 56]
IMAGENET_DEPTHS = [18, 34]  # Table 2: plain-18/34 against ResNet-18/34
IMAGENET_ALLOWED = (18, 34, 50, 101, 152)


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


def _add_training_options(p: argparse.ArgumentParser, default_depths: list[int], imagenet_depths: str = "") -> None:
    p.add_argument("--data", default="cifar10", help="data set name (cifar10, cifar100, digits, folder" + (", imagenet" if imagenet_depths else "") + "; default cifar10)")
    p.add_argument("--data-dir", default=None, help="data folder, e.g. an ImageFolder tree DATA/{train,test}/<class>/*.png")
    p.add_argument(
        "--depths", type=int, nargs="+", default=None,
        help=f"CIFAR depths 6n+2 (default {' '.join(map(str, default_depths))}){imagenet_depths}",
    )
    p.add_argument(
        "--budget", default="reduced", choices=("paper", "reduced", "tiny"),
        help="paper: the data set's full recipe (cifar-paper: 64k iterations); reduced: 700 iterations with the same "
        "schedule shape, sized to train the 8 nets of depths 20-56 in about 90 minutes on a 2-core CPU; tiny: 24 "
        "iterations, a smoke test (default reduced)",
    )
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
    _add_training_options(p, DEFAULT_DEPTHS)
    p.add_argument("--out", default="experiments/degradation", help="output folder (default experiments/degradation)")
    p.set_defaults(func=run_degradation)


def _add_depth_table(exp: argparse._SubParsersAction) -> None:
    p = exp.add_parser(
        "depth-table",
        help="test error against depth beside the paper's Table 6 (mean ± std over --runs); Table 2 with --data imagenet",
        description="Train ResNets of several depths and tabulate their test error beside the paper's Table 6 "
                    "(Table 2 with --data imagenet).",
        epilog=examples("resnet experiment depth-table --data cifar10 --data-dir ../shared/data/cifar10 --runs 2",
                        "resnet experiment depth-table --budget tiny --data digits --depths 8 14"),
    )
    _add_training_options(p, DEFAULT_DEPTHS + [110], f"; with --data imagenet {' '.join(map(str, IMAGENET_DEPTHS))} (Table 2)")
    p.add_argument("--runs", type=int, default=1, help="independent runs (seeds) per depth; the table reports mean ± std (default 1)")
    p.add_argument("--plain", action="store_true", help="train the plain twins too and list them beside the ResNets (always on with --data imagenet)")
    p.add_argument("--out", default="experiments/depth-table", help="output folder (default experiments/depth-table)")
    p.set_defaults(func=run_depth_table)


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
    p.add_argument("--batch-size", type=int, default=250, help="images per batch (default 250)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", default="experiments/responses", help="output folder (default experiments/responses)")
    p.set_defaults(func=run_responses)


def _add_gradients(exp: argparse._SubParsersAction) -> None:
    p = exp.add_parser(
        "gradients",
        help="per-layer gradient norms of plain vs residual nets at init and after K steps, with (and --no-bn: without) BN",
        description="Measure per-layer gradient norms of plain and residual networks at initialisation and after "
                    "--steps SGD steps, with BatchNorm (and with --no-bn without it).",
        epilog=examples("resnet experiment gradients --depths 20 56 --steps 0", "resnet experiment gradients --no-bn --data digits"),
    )
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110], help="CIFAR depths 6n+2 (default 20 56 110)")
    p.add_argument("--no-bn", action="store_true", help="also measure every network with BatchNorm replaced by the identity (second row)")
    p.add_argument("--steps", type=int, default=20, help="SGD steps between the two measurements (default 20; 0: only at init)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate with BN (default 0.1, the paper's; nets of 110 layers or more use a tenth, see --no-warmup)")
    p.add_argument(
        "--no-warmup", dest="warmup", action="store_false",
        help="train nets of 110+ layers at --lr too, instead of the paper's warm-up rate (--lr / 10) that the steps measured here fall into",
    )
    p.add_argument("--lr-no-bn", type=float, default=0.01, help="learning rate without BN (default 0.01, the paper's warm-up rate)")
    p.add_argument("--data", default=None, help="data set name (cifar10, digits, ...); or give only --data-dir for an image folder")
    p.add_argument(
        "--data-dir", default=None,
        help="data folder; without --data, an image folder DATA/train/<class>/* of which only the images needed are read",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", default="experiments/gradients", help="output folder (default experiments/gradients)")
    p.set_defaults(func=run_gradients)


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
    p.add_argument("--depths", type=int, nargs="+", default=[18, 34], help="ImageNet-style depths (default 18 34)")
    p.add_argument("--tasks", nargs="+", default=["segmentation"], choices=("segmentation", "detection"),
                   help="dense tasks to study (default segmentation)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe field override for every run, e.g. --set iterations=300 --set image_size=128")
    p.add_argument("--seed", type=int, default=0, help="seed shared by every network (default 0)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--pretrained", type=Path, default=None, metavar="DIR",
                   help="start each backbone from DIR/<name> (run folder), DIR/<name>.safetensors or .pth (default: from scratch)")
    p.add_argument("--plot-only", action="store_true", help="redraw the table and figures from the run folders in --out")
    p.add_argument("--out", default="experiments/backbone-degradation", help="output folder (default experiments/backbone-degradation)")
    p.set_defaults(func=run_backbone_degradation)


def run_backbone_degradation(args: argparse.Namespace) -> int:
    import json
    import shlex

    from ..analysis.backbone_study import (draw_study_predictions, plan_study, plot_study, run_study, study_markdown,
                                           study_rows, write_study_json)
    from ..analysis.experiments import write_text
    from ..train import parse_overrides

    bad = [d for d in args.depths if d not in IMAGENET_ALLOWED]
    if bad:
        raise UsageError(f"--depths takes ImageNet-style depths ({', '.join(map(str, IMAGENET_ALLOWED))}), got {bad}")
    out = Path(args.out)
    runs = plan_study(out, list(dict.fromkeys(args.depths)), list(dict.fromkeys(args.tasks)))
    overrides = parse_overrides(args.overrides)
    if args.plot_only:
        summaries = [json.loads((r.folder / "summary.json").read_text()) for r in runs if (r.folder / "summary.json").is_file()]
        runs = [r for r in runs if (r.folder / "summary.json").is_file()]
        if not runs:
            raise UsageError(f"no finished runs under {out / 'runs'}; run without --plot-only first")
    else:
        summaries = run_study(runs, args.data_dir, overrides, seed=args.seed, device=_device(args.device), progress=_say,
                              pretrained=args.pretrained)
    recipe = summaries[0]["recipe"]
    setup = (f"Penn-Fudan ({summaries[0]['train_images']} training / {summaries[0]['test_images']} test photos), "
             f"{recipe['image_size']} px, {recipe['iterations']} iterations of {recipe['batch_size']}, lr {recipe['lr']:g} "
             f"(warm-up {recipe['warmup']}, cosine), seed {args.seed}, every backbone "
             f"{'from ' + str(args.pretrained) if args.pretrained else 'from scratch (He init)'}, same budget.")
    command = "resnet experiment backbone-degradation " + " ".join(shlex.quote(a) for a in sys.argv[3:]) if sys.argv[1:3] == ["experiment", "backbone-degradation"] else ""
    wall = sum(float(s["seconds"]) for s in summaries)
    rows = study_rows(runs, summaries)
    files = [
        write_text(out / "results.md", study_markdown(rows, setup, command, wall)),
        plot_study(runs, out / "curves.png", "Same head, ResNet (solid) vs plain (dashed) backbones, from scratch"),
        draw_study_predictions(runs, args.data_dir, out / "predictions.png"),
        write_study_json(out / "results.json", {"setup": setup, "command": command, "wall_seconds": wall, "rows": rows}),
    ]
    _report_files(files)
    return 0 if all(s.get("finished") for s in summaries) else 1


# -- shared checks --------------------------------------------------------------------------------
def check_depths(depths: list[int]) -> list[int]:
    bad = [d for d in depths if d < 8 or (d - 2) % 6]
    if bad:
        raise UsageError(f"--depths must be CIFAR depths 6n+2 (8, 14, 20, 32, 44, 56, 110, ...), got {', '.join(map(str, bad))}")
    return list(dict.fromkeys(depths))  # drop repeats, keep the order


def _training_depths(args: argparse.Namespace, default: list[int]) -> list[int]:
    """``--depths`` checked against the data: CIFAR-style 6n+2 nets, or the ImageNet nets for --data imagenet."""
    from ..analysis.runs import IMAGENET_DATA

    if args.data in IMAGENET_DATA:
        depths = args.depths or IMAGENET_DEPTHS
        bad = [d for d in depths if d not in IMAGENET_ALLOWED]
        if bad:
            raise UsageError(f"--data {args.data} trains the ImageNet nets: --depths from {', '.join(map(str, IMAGENET_ALLOWED))}, got {', '.join(map(str, bad))}")
        return list(dict.fromkeys(depths))
    return check_depths(args.depths or default)


def _positive(name: str, value: int | None, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise UsageError(f"--{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value}")


def _device(name: str | None) -> str:
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available here; use --device cpu")
    if not (name == "cpu" or name.startswith("cuda")):
        raise UsageError(f"--device must be cpu or cuda[:N], got {name!r}")
    return name


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _report_files(paths: list[Path]) -> None:
    for p in paths:
        print(f"wrote {p}")


# -- responses ------------------------------------------------------------------------------------
def run_responses(args: argparse.Namespace) -> int:
    from ..analysis.experiments import responses_markdown, write_json, write_text
    from ..analysis.plots import plot_responses
    from ..analysis.responses import profile_member, resolve_response_sources
    from ..evaluate.data import open_eval_data

    _positive("limit", args.limit)
    _positive("batch-size", args.batch_size)
    device = _device(args.device)
    members = resolve_response_sources(args.sources, args.weights)
    data = open_eval_data(args.data, args.data_dir, args.split, limit=args.limit, channels=members[0][1].preprocess.channels)
    profiles = []
    for label, member in members:
        _say(f"measuring {label} on {len(data)} images")
        profiles.append(profile_member(member, data, label=label, batch_size=args.batch_size, device=device))
    out = Path(args.out)
    files = [
        plot_responses(profiles, out / "responses.png"),
        write_text(out / "responses.md", responses_markdown(profiles, data.description)),
        write_json(out / "responses.json", {"data": data.description, "images": len(data), "profiles": [p.as_dict() for p in profiles]}),
    ]
    _report_files(files)
    return 0


# -- gradients ------------------------------------------------------------------------------------
def run_gradients(args: argparse.Namespace) -> int:
    from ..analysis.experiments import gradients_markdown, write_json, write_text
    from ..analysis.gradients import gradient_study
    from ..analysis.plots import plot_gradients

    depths = check_depths(args.depths)
    _positive("steps", args.steps, allow_zero=True)
    _positive("batch-size", args.batch_size)
    if args.lr <= 0 or args.lr_no_bn <= 0:
        raise UsageError("--lr and --lr-no-bn must be positive")
    device = _device(args.device)
    needed = (args.steps + 1) * args.batch_size
    if args.data is None and args.data_dir is None:
        raise UsageError("name the training data with --data NAME (cifar10, digits, ...) or --data-dir PATH (an image folder)")
    if args.data is None:
        from ..analysis.gradients import folder_sample

        dataset = folder_sample(args.data_dir, "train", needed, seed=args.seed)
        description = dataset.source
    else:
        dataset = _load_train_arrays(args.data, args.data_dir)
        description = f"{args.data} training split" + (f" from {args.data_dir}" if args.data_dir else "")
    if len(dataset) < args.batch_size:
        raise UsageError(f"--batch-size {args.batch_size} is larger than the {len(dataset)} training images")
    runs = gradient_study(
        dataset, depths, steps=args.steps, batch_size=args.batch_size, lr=args.lr, lr_no_bn=args.lr_no_bn,
        no_bn=args.no_bn, warmup=args.warmup, seed=args.seed, device=device, progress=_say,
    )
    out = Path(args.out)
    files = [
        plot_gradients(runs, out / "gradients.png", "weight"),
        plot_gradients(runs, out / "gradients_backprop.png", "backprop"),
        write_text(out / "gradients.md", gradients_markdown(runs, description, args.steps, args.batch_size)),
        write_json(
            out / "gradients.json",
            {"data": description, "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "runs": [r.as_dict() for r in runs]},
        ),
    ]
    _report_files(files)
    return 0


def _load_train_arrays(name: str, data_dir: str | None) -> Any:
    from ..data.registry import open_arrays

    return open_arrays(name, "train", data_dir)


# -- degradation / depth table (training) ---------------------------------------------------------
def _training_setup(args: argparse.Namespace, plans: list[Any]) -> tuple[Any, str]:
    """Settings shared by every run, and a one-paragraph description for the tables."""
    from ..analysis.runs import budget_settings, describe_settings, settings_from_markers

    if args.plot_only:
        settings = settings_from_markers(plans)
        return settings, describe_settings(settings, args.budget if settings is None else None)
    _positive("parallel", args.parallel)
    settings = budget_settings(
        args.budget, data=args.data, data_dir=args.data_dir, iterations=args.iterations, device=_device(args.device),
        overrides=list(args.overrides),
    )
    return settings, describe_settings(settings)


def _train_all(args: argparse.Namespace, plans: list[Any], settings: Any) -> list[Any]:
    from ..analysis.runs import execute

    if args.plot_only:
        return []
    from ..data.registry import existing_dir

    existing_dir(args.data_dir)
    return execute(plans, settings, parallel=args.parallel, progress=_say)


def _failures(outcomes: list[Any]) -> int:
    failed = [o for o in outcomes if o.error]
    for o in failed:
        _say(f"{o.plan.name} did not finish: {o.error} (rerun the same command to resume it)")
    return 1 if failed else 0


def run_degradation(args: argparse.Namespace) -> int:
    from ..analysis.experiments import degradation_markdown, write_json, write_text
    from ..analysis.plots import plot_degradation
    from ..analysis.runs import plan_runs, read_curves

    out = Path(args.out)
    plans = plan_runs(out, _training_depths(args, DEFAULT_DEPTHS), seed=args.seed)
    settings, setup = _training_setup(args, plans)
    outcomes = _train_all(args, plans, settings)
    curves = read_curves(plans)
    if not curves:
        raise UsageError(f"no run folders with training logs under {out / 'runs'}; run without --plot-only first")
    data_name = settings.data if settings is not None else args.data
    files = [
        plot_degradation(curves, out / "degradation.png", title=_degradation_title(data_name, curves)),
        write_text(out / "degradation.md", degradation_markdown(curves, setup)),
        write_json(out / "degradation.json", {"setup": setup, "settings": _settings_dict(settings), "curves": curves}),
    ]
    _report_files(files)
    return _failures(outcomes)


def run_depth_table(args: argparse.Namespace) -> int:
    from ..analysis.experiments import depth_table_markdown, depth_table_rows, write_json, write_text
    from ..analysis.plots import plot_depth_table
    from ..analysis.runs import IMAGENET_DATA, plan_runs, read_curves

    out = Path(args.out)
    imagenet = args.data in IMAGENET_DATA
    plans = plan_runs(out, _training_depths(args, DEFAULT_DEPTHS + [110]), plain=args.plain or imagenet, runs=args.runs, seed=args.seed)
    settings, setup = _training_setup(args, plans)
    outcomes = _train_all(args, plans, settings)
    curves = read_curves(plans)
    if not curves:
        raise UsageError(f"no run folders with training logs under {out / 'runs'}; run without --plot-only first")
    rows = depth_table_rows(curves, imagenet=imagenet)
    title = "ImageNet-layout data: validation error against depth (paper Table 2)" if imagenet else ""
    files = [
        plot_depth_table(rows, out / "depth_table.png", title=title),
        write_text(out / "depth_table.md", depth_table_markdown(rows, setup, imagenet=imagenet)),
        write_json(out / "depth_table.json", {"setup": setup, "settings": _settings_dict(settings), "rows": rows, "curves": curves}),
    ]
    _report_files(files)
    return _failures(outcomes)


def _degradation_title(data: str, curves: list[dict[str, Any]]) -> str:
    steps = max((int(c.get("steps") or 0) for c in curves), default=0)
    return f"Training on {data} (paper Fig. 6, {steps:,} iterations): dashed = training error, bold = test error"


def _settings_dict(settings: Any) -> dict[str, Any] | None:
    from dataclasses import asdict

    return None if settings is None else asdict(settings)
