"""The paper's figures (matplotlib, Agg backend): Fig. 6 (degradation), Fig. 7 (layer responses)
and a gradient-flow figure. Every PNG is written atomically.

Conventions shared by all figures: one colour per depth (the same depth has the same colour in
every panel), plain networks dashed and residual networks solid where both share a panel.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

from ..errors import ResNetError
from ..utils.atomic import atomic_write_bytes
from ..utils.plotting import legend
from .gradients import GradientRun
from .responses import ResponseProfile

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def depth_colours(depths: Sequence[int]) -> dict[int, str]:
    return {d: _PALETTE[i % len(_PALETTE)] for i, d in enumerate(sorted(set(depths)))}


def _save(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    plt = _pyplot()
    out = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    try:
        atomic_write_bytes(out, _palette_png(buffer.getvalue()))
    except OSError as err:
        raise ResNetError(f"cannot write {out}: {err.strerror or err}; choose a writable `out` folder") from None
    return out


def _palette_png(data: bytes, colours: int = 128) -> bytes:
    """The PNG with a 128-colour palette: line plots look the same at a third of the size (results are committed)."""
    try:
        from PIL import Image

        image = Image.open(io.BytesIO(data)).convert("RGB")
        small = image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        small.save(buffer, format="PNG", optimize=True)
    except (ImportError, OSError, ValueError):
        return data  # an RGB figure is still a figure
    return buffer.getvalue() if buffer.tell() < len(data) else data


# -- Figure 6: training (dashed) and test (bold) error against iterations -------------------------
def plot_degradation(curves: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """``curves``: dicts with ``depth``, ``residual``, ``train`` and ``test`` ([[iteration, error %], ...])."""
    plt = _pyplot()
    colours = depth_colours([c["depth"] for c in curves])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    late_values: list[float] = []
    max_iter = 1
    for ax, residual in zip(axes, (False, True)):
        chosen = sorted((c for c in curves if bool(c["residual"]) == residual), key=lambda c: c["depth"])
        for c in chosen:
            colour = colours[c["depth"]]
            name = f"{'ResNet' if residual else 'plain'}-{c['depth']}"
            for key, style, width in (("train", "--", 1.1), ("test", "-", 2.4)):
                pts = [(float(i), float(e)) for i, e in c.get(key) or [] if e is not None and math.isfinite(float(e))]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                max_iter = max(max_iter, int(max(xs)))
                ax.plot(xs, ys, style, color=colour, linewidth=width, label=name if key == "test" else None)
                late_values.extend(y for x, y in pts if x >= 0.25 * max(xs))
        ax.set_title("plain networks" if not residual else "ResNets (residual)")
        ax.set_xlabel("iterations")
        ax.grid(True, alpha=0.3)
        if not legend(ax, fontsize=9, title="bold: test, dashed: train", title_fontsize=8):
            ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    axes[0].set_ylabel("error (%)")
    top = min(100.0, max(20.0, 1.05 * max(late_values))) if late_values else 100.0
    for ax in axes:
        ax.set_ylim(0, top)
        ax.set_xlim(0, max_iter)
    fig.suptitle(title or "Training on CIFAR-10 (paper Fig. 6): dashed = training error, bold = test error")
    fig.tight_layout()
    return _save(fig, path)


# -- Figure 7: std of layer responses ------------------------------------------------------------
def plot_responses(profiles: Sequence[ResponseProfile], path: str | Path, title: str = "") -> Path:
    plt = _pyplot()
    depths = [_depth_of(p) for p in profiles]
    colours = depth_colours(depths)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8))
    for p, depth in zip(profiles, depths):
        style = "-" if p.residual else "--"
        colour = colours[depth]
        xs = range(1, len(p.layers) + 1)
        top.plot(xs, p.stds, style, color=colour, linewidth=1.6, marker=".", markersize=4, label=p.label)
        bottom.plot(xs, p.sorted_stds, style, color=colour, linewidth=1.6, label=p.label)
    top.set_xlabel("layer index (original order)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        legend(ax, fontsize=9, ncol=2)
    n_images = sorted({p.images for p in profiles})
    fig.suptitle(title or f"Std of 3x3 layer responses after BN, before ReLU/addition (paper Fig. 7); {'/'.join(map(str, n_images))} test images")
    fig.tight_layout()
    return _save(fig, path)


def _depth_of(p: ResponseProfile) -> int:
    digits = "".join(ch for ch in p.model if ch.isdigit())
    return int(digits) if digits else len(p.layers)


# -- Gradient flow -------------------------------------------------------------------------------
def plot_gradients(runs: Sequence[GradientRun], path: str | Path, quantity: str = "weight", title: str = "") -> Path:
    """Per-layer gradient norms, log scale: rows with / without BN, columns at init / after training."""
    if quantity not in ("weight", "backprop"):
        raise ValueError(f"quantity must be 'weight' or 'backprop', got {quantity!r}")
    plt = _pyplot()
    bn_rows = [bn for bn in (True, False) if any(r.batchnorm == bn for r in runs)]
    n_cols = max(len(r.snapshots) for r in runs)
    colours = depth_colours([r.depth for r in runs])
    fig, axes = plt.subplots(len(bn_rows), n_cols, figsize=(6.2 * n_cols, 4.4 * len(bn_rows)), squeeze=False)
    for row, bn in enumerate(bn_rows):
        # Nets trained at different rates in one panel (the 110-layer warm-up) say which rate was theirs.
        show_lr = len({r.lr for r in runs if r.batchnorm == bn}) > 1
        for col in range(n_cols):
            ax = axes[row][col]
            # Runs that diverged stop early; the column is named after the steps the others completed.
            step = max((r.snapshots[col].step for r in runs if col < len(r.snapshots)), default=0)
            for r in sorted((r for r in runs if r.batchnorm == bn), key=lambda r: (r.depth, r.residual)):
                if col >= len(r.snapshots):
                    continue
                snap = r.snapshots[col]
                values = [getattr(g, quantity) for g in snap.layers]
                pts = [(i + 1, v) for i, v in enumerate(values) if math.isfinite(v) and v > 0]
                label = r.label + (f", lr {r.lr:g}" if show_lr and col > 0 else "")
                label += f" (diverged at step {r.diverged_at})" if r.diverged_at is not None and col > 0 else ""
                if not pts:
                    ax.plot([], [], "-" if r.residual else "--", color=colours[r.depth], label=label + " (no finite value)")
                    continue
                xs, ys = zip(*pts)
                ax.plot(xs, ys, "-" if r.residual else "--", color=colours[r.depth], linewidth=1.5, label=label)
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            when = "at initialisation" if col == 0 else f"after {step} SGD step{'s' if step != 1 else ''}"
            ax.set_title(f"{'with BN' if bn else 'without BN'}, {when}")
            ax.set_xlabel("layer index (1 = first conv, last = classifier)")
            ax.set_ylabel("||dL/dW||" if quantity == "weight" else "||dL/d(response)||")
            legend(ax, fontsize=8)
    what = "weight gradients" if quantity == "weight" else "back-propagated gradients (w.r.t. each layer's response: its BN output, without BN its conv output)"
    fig.suptitle(title or f"Per-layer {what}: plain (dashed) vs residual (solid)")
    fig.tight_layout()
    return _save(fig, path)


# -- Table 6 as a figure: test error against depth -------------------------------------------------
def plot_depth_table(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """``rows`` from :func:`resnet.analysis.experiments.depth_table_rows`: ours (mean ± std) beside the paper's."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for residual, colour, marker in ((True, _PALETTE[0], "o"), (False, _PALETTE[1], "s")):
        chosen = sorted((r for r in rows if r["residual"] == residual and r["mean"] is not None), key=lambda r: r["depth"])
        if chosen:
            ax.errorbar(
                [r["depth"] for r in chosen], [r["mean"] for r in chosen], yerr=[r["std"] or 0.0 for r in chosen],
                fmt=f"-{marker}", color=colour, capsize=4, linewidth=1.8, label=f"{'ResNet' if residual else 'plain'} (this run, mean ± std)",
            )
    for residual, marker in ((True, "^"), (False, "v")):
        paper = sorted((r["depth"], r["paper"]) for r in rows if r["residual"] == residual and r["paper"] is not None)
        if paper:
            xs, ys = zip(*paper)
            ax.plot(xs, ys, f":{marker}", color="black", linewidth=1.2, label=f"{'ResNet' if residual else 'plain'} (paper)")
    ax.set_xscale("log")
    depths = sorted({r["depth"] for r in rows})
    ax.set_xticks(depths, labels=[str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    legend(ax, fontsize=9)
    ax.set_title(title or "CIFAR-10 test error against depth (paper Table 6)")
    fig.tight_layout()
    return _save(fig, path)
