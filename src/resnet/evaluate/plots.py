"""Confusion-matrix images (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from torch import Tensor

from ..errors import ResNetError


def plot_confusion(confusion: Tensor, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (truth down, prediction across) written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.double()
    rates = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    k = len(classes)
    side = min(4 + 0.45 * k, 40)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 40:
        ax.set_xticks(range(k), labels=list(classes), rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels=list(classes), fontsize=8)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                n = int(counts[i, j])
                if n:
                    ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    except OSError as err:
        raise ResNetError(f"cannot write {out}: {err.strerror or err}; choose a writable `plots` folder") from None
    finally:
        plt.close(fig)
    return out


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "model"


def plot_report(report: Any, folder: str | Path) -> list[Path]:
    """One confusion-matrix PNG per result of an :class:`~resnet.evaluate.ensemble.EvalReport` into ``folder``
    (``confusion_<name>.png``, its protocol and top-1 error in the title)."""
    out = []
    for r in report.results:
        title = f"{r.name} — {report.protocol}, top-1 error {r.metrics.top1_error:.2f}%"
        out.append(plot_confusion(r.metrics.confusion, report.classes, Path(folder) / f"confusion_{safe_filename(r.name)}.png", title))
    return out
