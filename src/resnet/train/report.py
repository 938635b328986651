"""End-of-run outputs: training curves (PNG) and the results table (terminal and markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.plotting import legend


def plot_curves(records: Sequence[dict[str, Any]], path: Path, title: str) -> Path | None:
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
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def result_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    final, best = summary.get("final") or {}, summary.get("best") or {}
    rows = [
        ("model", summary["model"]),
        ("data", f"{summary['data']} ({summary['train_images']} training images, holdout {summary['recipe']['holdout']})"),
        ("recipe", f"{summary['recipe']['name']} v{summary['recipe']['version']}"),
        ("iterations", f"{summary['steps']} / {summary['recipe']['iterations']}" + ("" if summary["finished"] else " (unfinished)")),
        ("wall time", f"{summary['seconds']:.0f} s"),
        ("training speed", "–" if not summary.get("images_per_s") else f"{summary['images_per_s']:.0f} images/s"),
        ("final training error", _fmt(final.get("train_error"), " %")),
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


def write_results_markdown(summary: dict[str, Any], path: Path, command: str) -> Path:
    lines = ["# Training result", "", f"Command: `{command}`", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result_rows(summary)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def print_results(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"resnet train: {summary['model']} on {summary['data']}", show_header=False)
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
