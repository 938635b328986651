"""End-of-run outputs of a dense-task run: curves (loss; mAP or mIoU) and the results table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..utils.atomic import atomic_path, atomic_write_text

METRIC_LABELS = {"box_map": "box mAP", "box_map50": "box AP50", "mask_map": "mask mAP", "mask_map50": "mask AP50",
                 "miou": "mean IoU", "pixel_acc": "pixel accuracy"}


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
    for key, label in METRIC_LABELS.items():
        points = [(r["step"], r[key]) for r in evals if r.get(key) is not None]
        if points:
            ax_metric.plot(*zip(*points), marker="o", ms=3, lw=2 if key == main_metric else 1, label=f"test {label}")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper right")
    ax_metric.set_xlabel("iteration")
    ax_metric.set_ylabel("%")
    ax_metric.set_ylim(bottom=0)
    ax_metric.grid(alpha=0.3)
    ax_metric.legend(loc="best")
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


def dense_result_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    final, recipe = summary.get("final") or {}, summary["recipe"]
    rows = [("task", f"{summary['task']} ({summary['head']} head)"),
            ("backbone", f"{summary['model']} ({'from ' + summary['pretrained'] if summary.get('pretrained') else 'from scratch'})"),
            ("data", f"{summary['data']}: {summary['train_images']} training / {summary['test_images']} test photos, "
                     f"{recipe['image_size']} px"),
            ("recipe", f"{recipe['name']} v{recipe['version']}"),
            ("iterations", f"{summary['steps']} / {recipe['iterations']}" + ("" if summary["finished"] else " (unfinished)")),
            ("wall time", f"{summary['seconds']:.0f} s"),
            ("training speed", f"{summary['images_per_s']:.1f} images/s")]
    rows += [(f"test {label}", f"{final[key]:.2f} %") for key, label in METRIC_LABELS.items() if final.get(key) is not None]
    if summary.get("best"):
        best = summary["best"]
        key = next(k for k in best if k != "step")
        rows.append((f"best test {METRIC_LABELS[key]}", f"{best[key]:.2f} % at iteration {best['step']}"))
    if summary.get("skipped_files"):
        rows.append(("skipped files", str(summary["skipped_files"])))
    return rows


def write_dense_results(summary: dict[str, Any], path: Path, command: str) -> Path:
    lines = ["# Training result", "", f"Command: `{command}`", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in dense_result_rows(summary)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
