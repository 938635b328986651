"""The degradation study on a dense task: the same head on ResNet and plain-twin backbones of several depths,
trained alike from scratch (``resnet experiment backbone-degradation``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError
from ..train.checkpoint import LAST_WEIGHTS
from ..train.report import MAIN_METRIC, METRIC_LABELS, save_figure
from ..train.metrics import METRICS_FILE, read_metrics
from ..train.recipes import parse_overrides
from ..utils.atomic import atomic_write_text
from ..utils.device import resolve_device
from .configs import BackboneStudyConfig, ExperimentResult
from .experiments import write_text
from .runs.plans import ProgressFn


@dataclass(frozen=True)
class StudyRun:
    backbone: str  # resnet18, plain18, ...
    task: str
    folder: Path

    @property
    def residual(self) -> bool:
        return self.backbone.startswith("resnet")


def run_backbone_degradation(config: BackboneStudyConfig, *, progress: ProgressFn | None = None) -> ExperimentResult:
    """Train (or keep) the same head on resnetD and plainD backbones for each depth and task; table, curves and
    a picture of predictions go to ``config.out``. Unfinished runs are listed in the result."""
    say = progress or (lambda _m: None)
    runs = plan_study(config.out, config.checked_depths(), list(dict.fromkeys(config.tasks)))
    overrides = parse_overrides(list(config.overrides))
    if config.plot_only:
        runs = [r for r in runs if (r.folder / "summary.json").is_file()]
        summaries = [json.loads((r.folder / "summary.json").read_text()) for r in runs]
        if not runs:
            raise UsageError(f"no finished runs under {config.out / 'runs'}; run without `plot_only` first")
    else:
        summaries = run_study(runs, config.data_dir, overrides, seed=config.seed, device=str(resolve_device(config.device)),
                              progress=say, pretrained=config.pretrained)
    setup = _study_setup(config, summaries[0])
    wall = sum(float(s["seconds"]) for s in summaries)
    rows = study_rows(runs, summaries)
    data = {"setup": setup, "command": config.command, "wall_seconds": wall, "rows": rows}
    files = (
        write_text(config.out / "results.md", study_markdown(rows, setup, config.command, wall)),
        plot_study(runs, config.out / "curves.png", "Same head, ResNet (solid) vs plain (dashed) backbones, from scratch"),
        draw_study_predictions(runs, config.data_dir, config.out / "predictions.png"),
        write_study_json(config.out / "results.json", data),
    )
    unfinished = tuple((f"{r.task}-{r.backbone}", str(s.get("stop_reason") or "not finished"))
                       for r, s in zip(runs, summaries) if not s.get("finished"))
    return ExperimentResult(files, data, unfinished)


def _study_setup(config: BackboneStudyConfig, first: dict[str, Any]) -> str:
    recipe = first["recipe"]
    start = f"from {config.pretrained}" if config.pretrained else "from scratch (He init)"
    return (f"Penn-Fudan ({first['train_images']} training / {first['test_images']} test photos), "
            f"{recipe['image_size']} px, {recipe['iterations']} iterations of {recipe['batch_size']}, lr {recipe['lr']:g} "
            f"(warm-up {recipe['warmup']}, cosine), seed {config.seed}, every backbone {start}, same budget.")


def plan_study(out: Path, depths: Sequence[int], tasks: Sequence[str]) -> list[StudyRun]:
    return [StudyRun(f"{kind}{d}", task, out / "runs" / f"{task}-{kind}{d}")
            for task in tasks for d in depths for kind in ("plain", "resnet")]


def pretrained_for(folder: Path | None, backbone: str) -> str | None:
    """``folder/<backbone>`` as a run folder, ``.safetensors`` or ``.pth`` file (ImageNet weights of each net)."""
    if folder is None:
        return None
    for candidate in (folder / backbone, folder / f"{backbone}.safetensors", folder / f"{backbone}.pth"):
        if candidate.exists():
            return str(candidate)
    raise UsageError(f"`pretrained` {folder} has no weights for {backbone} ({backbone}/, {backbone}.safetensors or "
                     f"{backbone}.pth); train them on ImageNet-layout data (`resnet.train.train(model='{backbone}')`)")


def run_study(runs: Sequence[StudyRun], data_dir: str, overrides: dict[str, str], *, seed: int, device: str | None,
              progress: ProgressFn, pretrained: Path | None = None) -> list[dict[str, Any]]:
    """Train (or resume, or keep a finished) run per backbone; returns their summaries."""
    from ..train import TrainOptions, train

    weights = {run.backbone: pretrained_for(pretrained, run.backbone) for run in runs}  # all checked before training

    summaries = []
    for run in runs:
        done = run.folder / "summary.json"
        if done.is_file() and json.loads(done.read_text()).get("finished"):
            progress(f"{run.task} {run.backbone}: finished earlier, kept ({run.folder})")
            summaries.append(json.loads(done.read_text()))
            continue
        progress(f"{run.task} {run.backbone}: training -> {run.folder}")
        opts = TrainOptions(task=run.task, model=run.backbone, data="pennfudan", data_dir=data_dir,
                            overrides=dict(overrides), out=run.folder, seed=seed, device=device, resume=True,
                            progress=False, tensorboard=False, init=weights[run.backbone])
        summaries.append(train(opts))
        progress(f"{run.task} {run.backbone}: {_headline(summaries[-1])}")
    return summaries


def _headline(summary: dict[str, Any]) -> str:
    key = MAIN_METRIC[summary["task"]]
    final = summary.get("final") or {}
    value = final.get(key)
    return f"{METRIC_LABELS[key]} {value:.2f} %, {summary['seconds']:.0f} s" if value is not None else "no score"


def study_rows(runs: Sequence[StudyRun], summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for run, s in zip(runs, summaries):
        final = s.get("final") or {}
        rows.append({"task": s["task"], "head": s["head"], "backbone": s["model"], "iterations": s["steps"],
                     "seconds": s["seconds"], **{k: final.get(k) for k in METRIC_LABELS if final.get(k) is not None},
                     "final_train_loss": _last_loss(run.folder)})
    return rows


def _last_loss(folder: Path) -> float | None:
    """Mean training loss of the last five logged windows."""
    tail = [r for r in read_metrics(folder / METRICS_FILE) if r.get("kind") == "train"][-5:]
    return sum(r["loss"] for r in tail) / len(tail) if tail else None


def study_markdown(rows: Sequence[dict[str, Any]], setup: str, command: str, wall: float) -> str:
    keys = [k for k in METRIC_LABELS if any(r.get(k) is not None for r in rows)]
    head = ["task", "backbone", "iterations", "final training loss", *(f"test {METRIC_LABELS[k]} %" for k in keys), "wall time"]
    lines = ["# Degradation on a dense task: ResNet vs plain backbones", "", setup, "",
             f"Command: `{command}`", "", f"Wall time: {wall / 60:.1f} min (the runs' own, summed)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        loss = "–" if r.get("final_train_loss") is None else f"{r['final_train_loss']:.3f}"
        cells = [r["task"], r["backbone"], str(r["iterations"]), loss,
                 *("–" if r.get(k) is None else f"{r[k]:.2f}" for k in keys), f"{r['seconds']:.0f} s"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_study(runs: Sequence[StudyRun], path: Path, title: str) -> Path:
    """Training loss (left) and the hold-out metric (right) against iterations, one line per backbone:
    dashed = plain, solid = ResNet, one colour per depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    depths = sorted({int("".join(c for c in r.backbone if c.isdigit())) for r in runs})
    for run in runs:
        records = read_metrics(run.folder / METRICS_FILE)
        train = [r for r in records if r.get("kind") == "train"]
        key = MAIN_METRIC[run.task]
        if any(r.get(f"holdout_{key}") is not None for r in records):  # since v2: scored on hold-out photos in training
            key = f"holdout_{key}"
        evals = [(r["step"], r[key]) for r in records if r.get("kind") == "eval" and r.get(key) is not None]
        depth = int("".join(c for c in run.backbone if c.isdigit()))
        style = dict(color=f"C{depths.index(depth)}", ls="-" if run.residual else "--", label=f"{run.task} {run.backbone}")
        if train:
            ax_loss.plot([r["step"] for r in train], _smooth([r["loss"] for r in train]), lw=1.2, **style)
        if evals:
            ax_metric.plot(*zip(*evals), marker="o", ms=3, lw=1.5, **style)
    ax_loss.set(xlabel="iteration", ylabel="training loss (smoothed)")
    ax_metric.set(xlabel="iteration", ylabel="hold-out (earlier runs: test) score (%)")
    ax_metric.set_ylim(bottom=0)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, title, dpi=90)


def _smooth(values: list[float], k: int = 5) -> list[float]:
    return [sum(values[max(0, i - k + 1):i + 1]) / len(values[max(0, i - k + 1):i + 1]) for i in range(len(values))]


def draw_study_predictions(runs: Sequence[StudyRun], data_dir: str, path: Path, photos: int = 3) -> Path:
    """A grid: the same test photos (rows) as each backbone's final model (columns) sees them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.pennfudan import load_pennfudan
    from ..evaluate.dense import draw_prediction
    from ..models.dense import dense_model_from_checkpoint
    import torch

    from ..inference.dense import predict_samples

    models = [dense_model_from_checkpoint(r.folder / LAST_WEIGHTS) for r in runs]
    size = int(models[0][1]["dense"]["image_size"])
    _, test = load_pennfudan(data_dir, size)
    chosen = test.samples[:: max(1, len(test.samples) // photos)][:photos]
    fig, axes = plt.subplots(len(chosen), len(runs), figsize=(2.4 * len(runs), 2.6 * len(chosen)), squeeze=False)
    for col, (run, (model, meta)) in enumerate(zip(runs, models)):
        outs = predict_samples(model, [s.image for s in chosen], meta["task"], torch.device("cpu"))
        for row, (sample, out) in enumerate(zip(chosen, outs)):
            ax = axes[row][col]
            ax.imshow(draw_prediction(sample.image, out, meta["task"], meta["classes"]).permute(1, 2, 0).numpy())
            ax.set_axis_off()
            if row == 0:
                ax.set_title(f"{run.task[:3]}. {run.backbone}", fontsize=9)
    return save_figure(fig, path, dpi=80)


def write_study_json(path: Path, payload: dict[str, Any]) -> Path:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    return path
