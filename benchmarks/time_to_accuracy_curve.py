"""The variants of a time-to-accuracy study side by side: a table and a plot of accuracy against epochs and
against wall time, from the ``time_to_accuracy.json`` each run of ``benchmarks/time_to_accuracy.py`` wrote.

    .venv/bin/python benchmarks/time_to_accuracy_curve.py RUN_DIR... --out DIR [--target 91.25]

Writes ``DIR/variants.md`` (one row per run: what it changed, epochs, accuracy, wall time, images/s, the host's
fp32 matmul rate; then, for variants run with several ``--seed``s, their mean and range) and ``DIR/variants.png``. A run whose JSON says ``"wall_s_valid": false`` (it shared the CPU
or was paused) is kept off the wall-time axis.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def load(folder: Path) -> dict:
    result = json.loads((folder / "time_to_accuracy.json").read_text())
    result["folder"] = folder.name
    sets = [part.split(" ", 1)[1] for part in result["command"].split(" --")[1:] if part.startswith("set ")]
    changes = [f"`{s}`" for s in sets if not s.startswith(("eval_every=", "iterations="))]
    result["variant"] = ", ".join(changes) or "as is"
    result["changes"] = ", ".join(changes + ([f"seed {result['seed']}"] if result.get("seed") else [])) or "as is"
    return result


def views(result: dict) -> str:
    """The test-time views a score was taken with, e.g. "mirror, ±2 px" (6 views)."""
    declared = result.get("test_views") or {}
    parts = (["mirror"] if declared.get("flip") else []) + ([f"±{declared['shift']} px"] if declared.get("shift") else [])
    return ", ".join(parts) or "1 view"


def table(runs: list[dict], target: float) -> str:
    lines = ["| run | recipe | changes | epochs | test views | accuracy | wall | images/s | matmul GFLOP/s |",
             "|---|---|---|---:|---|---:|---:|---:|---:|"]
    for r in sorted(runs, key=lambda r: (r["epochs"], r["accuracy"])):
        acc = f"**{r['accuracy']:.2f} %**" if r["accuracy"] >= target else f"{r['accuracy']:.2f} %"
        wall = f"{r['wall_s'] / 60:.1f} min" if r.get("wall_s_valid", True) else "(shared CPU)"
        speed = f"{r['images_per_s']:,.0f}" if r.get("wall_s_valid", True) else "–"
        lines.append(f"| `{r['folder']}` | {r['recipe']} | {r['changes']} | {r['epochs']:.1f} | {views(r)} | {acc} | {wall} | {speed} | "
                     f"{r['matmul_gflops_start']:.0f} → {r['matmul_gflops_end']:.0f} |")
    return "\n".join(lines) + "\n"


def seeds_table(runs: list[dict]) -> str:
    """Variants run with more than one seed: how many, the mean and the range of their accuracies."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["recipe"], r["variant"], r["epochs"]), []).append(r)
    lines = ["| recipe | changes | epochs | seeds | mean accuracy | range |", "|---|---|---:|---|---:|---:|"]
    for (recipe, variant, epochs), group in sorted(groups.items(), key=lambda kv: kv[0][2]):
        if len(group) < 2:
            continue
        accs = [r["accuracy"] for r in group]
        seeds = ", ".join(str(r.get("seed", 0)) for r in sorted(group, key=lambda r: r.get("seed", 0)))
        lines.append(f"| {recipe} | {variant} | {epochs:.1f} | {seeds} | {sum(accs) / len(accs):.2f} % | "
                     f"{min(accs):.2f}–{max(accs):.2f} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def plot(runs: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_epochs, by_wall) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    prefix = os.path.commonprefix([r["folder"] for r in runs]) if len(runs) > 1 else ""
    for i, r in enumerate(runs):
        style = {"color": f"C{i % 10}", "marker": "os^D"[i // 10 % 4]}
        name = r["folder"][len(prefix):] or r["folder"]
        points = [(by_epochs, r["epochs"])] + ([(by_wall, r["wall_s"] / 60)] if r.get("wall_s_valid", True) else [])
        for ax, x in points:
            ax.scatter(x, r["accuracy"], **style)
            ax.annotate(name, (x, r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for ax, limit, label in ((by_epochs, 16, "epochs (training images / 50,000)"), (by_wall, 30, "wall time, cold start to score (min)")):
        ax.axhline(target, color="grey", linestyle="--", linewidth=1)
        ax.axvline(limit, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    by_epochs.set_ylabel("test accuracy, recipe's test views (%)")
    fig.suptitle(f"ResNet-20 on CIFAR-10: time to {target} % (dashed); targets <= 16 epochs, <= 30 min (dotted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--target", type=float, default=91.25)
    args = p.parse_args(argv)
    # the output folder may match the same glob as the runs (docs/results/train/cpu-zen4-tta-*)
    runs = [load(folder) for folder in args.runs if folder.resolve() != args.out.resolve()]
    if not runs:
        p.error("no run folders besides --out")
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = seeds_table(runs)
    text = table(runs, args.target) + (f"\nVariants run with several seeds:\n\n{seeds}" if seeds else "")
    (args.out / "variants.md").write_text(text)
    plot(runs, args.target, args.out / "variants.png")
    print(text, end="")


if __name__ == "__main__":
    main()
