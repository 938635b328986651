"""End-of-run outputs of every task: training curves (PNG) and the results table (terminal and markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.plotting import legend


# The scores of dense tasks (percent), as shown in tables and plots.
METRIC_LABELS = {"box_map": "box mAP", "box_map50": "box AP50", "mask_map": "mask mAP", "mask_map50": "mask AP50",
                 "miou": "mean IoU", "pixel_acc": "pixel accuracy"}
MAIN_METRIC = {"detection": "box_map", "segmentation": "miou"}  # what selects a dense run's best checkpoint


def plot_curves(records: Sequence[dict[str, Any]], path: Path, title: str, task: str = "classification") -> Path | None:
    """Loss (and lr) on the left; errors (classification) or scores (dense tasks) on the right."""
    if task != "classification":
        return plot_dense_curves(records, path, title, MAIN_METRIC[task])
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    # A short run logs few points: markers keep them visible (a line through one point draws nothing).
    few = dict(marker="o", ms=3) if len(train) < 20 else {}
    if train:
        steps = [r["step"] for r in train]
        ax_loss.plot(steps, [r["loss"] for r in train], lw=1, label="training loss", **few)
        ax_lr = ax_loss.twinx()
        ax_lr.plot(steps, [r["lr"] for r in train], color="grey", lw=0.8, ls=":", label="learning rate", **few)
        ax_lr.set_ylabel("learning rate")
        ax_err.plot(steps, [r["error"] for r in train], lw=0.8, ls="--", color="tab:blue", label="training error", **few)
    else:  # stopped before the first log line: the evaluations carry the training loss of their window
        points = [(r["step"], r["train_loss"]) for r in evals if r.get("train_loss") is not None]
        if points:
            ax_loss.plot(*zip(*points), marker="o", ms=3, lw=1, label="training loss")
    for key, style in (("holdout_error", dict(color="tab:orange", lw=1.5)), ("test_error", dict(color="tab:red", lw=2))):
        points = [(r["step"], r[key]) for r in evals if r.get(key) is not None]
        if points:
            ax_err.plot(*zip(*points), marker="o", ms=3, label=key.replace("_", " "), **style)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
    legend(ax_loss, *([ax_lr] if train else []), fontsize="small", framealpha=0.8)
    ax_err.set_xlabel("iteration")
    ax_err.set_ylabel("top-1 error (%)")
    ax_err.set_ylim(bottom=0)
    ax_err.grid(alpha=0.3)
    legend(ax_err, fontsize="small", framealpha=0.8)
    return save_figure(fig, path, title, dpi=110)


def plot_dense_curves(records: Sequence[dict[str, Any]], path: Path, title: str, main_metric: str) -> Path | None:
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1, label="training loss")
    for prefix, split, style in (("holdout_", "hold-out", ":"), ("", "test", "-")):
        for key, label in METRIC_LABELS.items():
            points = [(r["step"], r[prefix + key]) for r in evals if r.get(prefix + key) is not None]
            if points:
                ax_metric.plot(*zip(*points), marker="o", ms=3, ls=style, lw=2 if key == main_metric else 1,
                               label=f"{split} {label}")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
    legend(ax_loss, loc="upper right")
    ax_metric.set_xlabel("iteration")
    ax_metric.set_ylabel("%")
    ax_metric.set_ylim(bottom=0)
    ax_metric.grid(alpha=0.3)
    legend(ax_metric)
    return save_figure(fig, path, title, dpi=100)


def save_figure(fig: Any, path: Path, title: str | None = None, dpi: int = 100) -> Path:
    """Title, tight layout, PNG written atomically, figure closed."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def _window(final: dict[str, Any]) -> str:
    """`` (iterations 41-60)``: the last logging window, which the final training figures describe."""
    window = final.get("train_window")
    return f" (iterations {window[0]}–{window[1]})" if window else ""


def _timing_rows(summary: dict[str, Any], unit: str) -> list[tuple[str, str]]:
    seconds, evaluating = summary["seconds"], summary.get("eval_seconds")
    share = f" ({evaluating:.0f} s evaluating, {100 * evaluating / seconds:.0f} %)" if evaluating and seconds else ""
    speed = summary.get("images_per_s")
    return [("wall time", f"{seconds:.0f} s{share}"),
            ("training speed", "–" if not speed else f"{speed:.{0 if speed >= 10 else 2}f} {unit}/s")]


def result_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The results table of a run (classification or dense)."""
    if summary.get("task", "classification") != "classification":
        return dense_result_rows(summary)
    final, best = summary.get("final") or {}, summary.get("best") or {}
    rows = [
        ("model", summary["model"]),
        ("data", f"{summary['data']} ({summary['train_images']} training images, holdout {summary['recipe']['holdout']})"),
        ("recipe", f"{summary['recipe']['name']} v{summary['recipe']['version']}"),
        ("iterations", f"{summary['steps']} / {summary['recipe']['iterations']}" + ("" if summary["finished"] else " (unfinished)")),
        *_timing_rows(summary, "images"),
        (f"final training error{_window(final)}", _fmt(final.get("train_error"), " %")),
        ("final holdout error", _fmt(final.get("holdout_error"), " %")),
        ("final test error", _fmt(final.get("test_error"), " %")),
        ("final test accuracy", _fmt(None if final.get("test_error") is None else 100 - final["test_error"], " %")),
    ]
    if best:
        rows.append(("best holdout error", f"{_fmt(best.get('holdout_error'), ' %')} at iteration {best.get('step')} "
                     f"(test error there {_fmt(best.get('test_error'), ' %')})"))
    if summary.get("skipped_files"):
        rows.append(("skipped files", str(summary["skipped_files"])))
    return rows


def dense_result_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    final, recipe = summary.get("final") or {}, summary["recipe"]
    start = "from " + summary["init"] if summary.get("init") else "from scratch"
    rows = [("task", f"{summary['task']} ({summary['head']} head)"),
            ("backbone", f"{summary['model']} ({start})"),
            ("data", f"{summary['data']}: {summary['train_images']} training / {summary.get('holdout_images', 0)} hold-out / "
                     f"{summary['test_images']} test photos, {recipe['image_size']} px"),
            ("recipe", f"{recipe['name']} v{recipe['version']}"),
            ("iterations", f"{summary['steps']} / {recipe['iterations']}" + ("" if summary["finished"] else " (unfinished)")),
            *_timing_rows(summary, "images"),
            (f"final training loss{_window(final)}", _fmt(final.get("train_loss")))]
    rows += [(f"test {label}", f"{final[key]:.2f} %") for key, label in METRIC_LABELS.items() if final.get(key) is not None]
    best = summary.get("best") or {}
    key = next((k for k in best if k.startswith("holdout_")), None)
    if key is not None:
        metric = key.removeprefix("holdout_")
        there = f" (test {METRIC_LABELS[metric]} there {best[metric]:.2f} %)" if best.get(metric) is not None else ""
        rows.append((f"best hold-out {METRIC_LABELS[metric]}", f"{best[key]:.2f} % at iteration {best['step']}{there}"))
    if summary.get("skipped_files"):
        rows.append(("skipped files", str(summary["skipped_files"])))
    return rows


def write_results_markdown(summary: dict[str, Any], path: Path, command: str) -> Path:
    lines = ["# Training result", "", f"Command: `{command}`", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result_rows(summary)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def print_results(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    task = summary.get("task", "classification")
    what = summary["model"] if task == "classification" else f"{summary['head']} on {summary['model']}"
    table = Table(title=f"resnet train: {what} on {summary['data']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in result_rows(summary):
        table.add_row(k, v)
    Console(stderr=False).print(table)
    print_per_class(summary)


def print_per_class(summary: dict[str, Any]) -> None:
    """The per-class accuracy of the final network (``summary["per_class_accuracy"]``), for at most
    :data:`~resnet.inference.per_class.PER_CLASS_PRINTED` classes (``summary.json`` has it always)."""
    from rich.console import Console
    from rich.table import Table

    from ..inference.per_class import PER_CLASS_PRINTED

    accs = summary.get("per_class_accuracy") or {}
    if not accs or len(accs) > PER_CLASS_PRINTED:
        return
    table = Table(title=f"per-class accuracy %, {summary.get('per_class_split', 'test')} set", show_edge=False)
    table.add_column("class")
    table.add_column("accuracy %", justify="right")
    for name, acc in accs.items():
        table.add_row(name, "-" if acc is None else f"{acc:.1f}")
    Console(stderr=False).print(table)
