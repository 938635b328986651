"""What the paper's experiments write besides figures: their markdown tables (with the paper's figures
beside ours and plain-language verdicts) and their raw measurements as JSON.

The experiments themselves are :mod:`resnet.analysis.training_experiments` (Fig. 6, Table 6: trained
through :mod:`resnet.analysis.runs`) and :mod:`resnet.analysis.measured_experiments` (Fig. 7, Sec. 4.1).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from ..utils.atomic import atomic_write_text
from .gradients import GradientRun, summarize
from .responses import ResponseProfile


def json_text(obj: Any, level: int = 0) -> str:
    """Indented JSON whose innermost containers (only numbers, strings, null) stay on one line.

    Per-layer measurements are long lists of numbers; one number per line would make the committed
    results files ten times longer without making them easier to read. NaN and infinity are refused.
    """
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(obj, dict) and obj and not all(_scalar(v) for v in obj.values()):
        items = [f"{pad}{json.dumps(str(k))}: {json_text(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(obj, (list, tuple)) and obj and not all(_scalar(v) for v in obj):
        return "[\n" + ",\n".join(pad + json_text(v, level + 1) for v in obj) + "\n" + end + "]"
    return json.dumps(obj, allow_nan=False)


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def write_json(path: str | Path, obj: Any) -> Path:
    atomic_write_text(path, json_text(obj) + "\n")
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")
    return Path(path)


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


# -- Fig. 7 ---------------------------------------------------------------------------------------
def responses_markdown(profiles: Sequence[ResponseProfile], data_description: str) -> str:
    lines = [
        "# Layer responses (paper Fig. 7)",
        "",
        f"Standard deviation of each 3x3 layer's response (output of its BN, before ReLU / addition) over {data_description}.",
        "`std` pools all elements of a layer's output (images x channels x positions); the per-layer values are in `responses.json`.",
        "",
        "| network | source | normalisation (mean / std) | 3x3 layers | mean std | median std | max std | min std |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in profiles:
        stds = p.stds
        norm = p.extra.get("normalisation", {})
        norm_text = f"{_short(norm.get('mean'))} / {_short(norm.get('std'))}" if norm else "-"
        lines.append(
            f"| {p.label} | `{Path(p.source).name or p.source}` | {norm_text} | {len(stds)} | {_fmt(statistics.fmean(stds))} | "
            f"{_fmt(statistics.median(stds))} | {_fmt(max(stds))} | {_fmt(min(stds))} |"
        )
    lines += [
        "",
        "The paper (Sec. 4.2) reports that ResNets have generally smaller responses than their plain counterparts, and that "
        "the deeper the ResNet, the smaller the magnitude of its responses (each residual function modifies the signal less).",
    ]
    return "\n".join(lines)


def _short(values: Any) -> str:
    if not values:
        return "-"
    return "(" + ", ".join(f"{float(v):.3g}" for v in values) + ")"


# -- Gradient flow --------------------------------------------------------------------------------
def gradients_markdown(runs: Sequence[GradientRun], data_description: str, steps: int, batch_size: int) -> str:
    lines = [
        "# Gradient flow: plain vs residual, with and without BatchNorm",
        "",
        f"Data: {data_description}; one fixed batch of {batch_size} images for every measurement (BN in training mode); "
        f"SGD (momentum 0.9, weight decay 1e-4, learning rate `lr` below) for {steps} steps between the two measurements.",
        "",
        "Columns: `dL/dW` is the L2 norm of the loss gradient w.r.t. a layer's weights, `dL/dr` w.r.t. its response "
        "(the BN output, or the conv output without BN: the signal propagated backwards). `first ÷ last` divides the "
        "first convolution's norm by the last one's: far below 1 means the gradient vanishes towards the input, far "
        "above 1 that it explodes. Per-layer values are in `gradients.json`.",
        "",
        "| network | BN | lr | loss at init | loss after | dL/dW first ÷ last, init | after | dL/dr first ÷ last, init | after | diverged at step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        s = summarize(r)
        after = len(r.snapshots) > 1
        cells = [r.label, "yes" if r.batchnorm else "no", f"{r.lr:g}", _fmt(s["init_loss"]), _fmt(s["trained_loss"]) if after else "-"]
        for key in ("ratio", "bp_ratio"):
            cells += [_fmt(s[f"init_{key}"]), _fmt(s[f"trained_{key}"]) if after else "-"]
        cells.append(str(r.diverged_at) if r.diverged_at is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "The paper (Sec. 4.1) argues that its plain nets, trained with BN, do not suffer from vanishing gradients: "
        "\"we also verify that the backward propagated gradients exhibit healthy norms with BN\", so their higher "
        "training error is an optimisation difficulty, not a vanishing-gradient problem.",
    ]
    return "\n".join(lines)



# -- Fig. 6 / Table 6 -----------------------------------------------------------------------------
def _final(curve: dict[str, Any], key: str) -> float | None:
    v = curve.get(f"final_{key}_error")
    return None if v is None else float(v)


def _net(depth: int, residual: bool) -> str:
    return f"{'ResNet' if residual else 'plain'}-{depth}"


#: The data set the paper's CIFAR figures (Fig. 6, Table 6) are for: shown beside results on it only.
PAPER_CIFAR_DATA = "cifar10"
#: A net "learnt" when its training error is at most this share of the chance error (60 % for 10 classes).
WELL_BELOW_CHANCE = 2 / 3
#: Training-error points at the end of a curve whose spread is its noise (one seed per net).
NOISE_POINTS = 5


def chance_error(classes: int | None) -> float | None:
    """Top-1 error (%) of guessing among ``classes`` classes."""
    return None if not classes else 100.0 * (1 - 1 / classes)


def _noise(curves: Sequence[dict[str, Any]]) -> float:
    """The spread (points) of a final training error, the largest over ``curves``: the sample std of the final errors
    of the seeds of one net, and of each curve's last :data:`NOISE_POINTS` logged training errors about their trend
    (the std of successive differences over √2, which a steady decrease does not inflate)."""
    spreads = []
    groups: dict[tuple[int, bool], list[float]] = {}
    for c in curves:
        value = _final(c, "train")
        if value is not None:
            groups.setdefault((int(c["depth"]), bool(c["residual"])), []).append(value)
        tail = [float(e) for _, e in (c.get("train") or [])[-NOISE_POINTS:] if e is not None]
        steps = [b - a for a, b in zip(tail, tail[1:])]
        if len(steps) > 1:
            spreads.append(statistics.stdev(steps) / math.sqrt(2))
    spreads += [statistics.stdev(v) for v in groups.values() if len(v) > 1]
    return max(spreads, default=0.0)


def judge_depths(shallow: dict[str, Any], deep: dict[str, Any], noise: float) -> tuple[str, str]:
    """(``reproduced`` | ``not reproduced`` | ``inconclusive``, why) for the paper's claim on one kind of net:
    the deeper plain net trains worse (degradation); the deeper ResNet trains at least as well. Judged only
    when both nets learnt (training error well below chance) and against twice the noise."""
    residual = bool(deep["residual"])
    a, b = _final(shallow, "train"), _final(deep, "train")
    assert a is not None and b is not None
    chance = chance_error(deep.get("classes") or shallow.get("classes"))
    if chance is None:
        return "inconclusive", "the number of classes (the chance level) is unknown"
    for c, err in ((shallow, a), (deep, b)):
        if err > WELL_BELOW_CHANCE * chance:
            return "inconclusive", (f"{_net(c['depth'], residual)} sits at {err:.2f} % training error, near chance "
                                    f"({chance:.1f} % for {deep.get('classes') or shallow.get('classes')} classes): it has not "
                                    "learnt enough at this budget to compare depths; train longer")
    margin = 2 * noise
    gap = b - a  # > 0: the deeper net trains worse
    if abs(gap) <= margin:
        if residual:
            return "reproduced", f"the deeper ResNet trains as well, within the noise (gap {gap:+.2f} points, noise ±{margin:.2f})"
        return "inconclusive", f"the gap {gap:+.2f} points is within the noise (±{margin:.2f}: twice the spread of the final errors)"
    if residual:
        return ("reproduced", f"the deeper ResNet trains better ({gap:+.2f} points, beyond the noise ±{margin:.2f})") if gap < 0 else \
               ("not reproduced", f"the deeper ResNet trains worse ({gap:+.2f} points, beyond the noise ±{margin:.2f})")
    return ("reproduced", f"the deeper plain net trains worse ({gap:+.2f} points, beyond the noise ±{margin:.2f})") if gap > 0 else \
           ("not reproduced", f"the deeper plain net trains better ({gap:+.2f} points, beyond the noise ±{margin:.2f})")


def claim_checks(curves: Sequence[dict[str, Any]]) -> list[str]:
    """Plain-language verdicts on the paper's two statements, from the final training errors, each with its reason:
    "reproduced" only when the nets learnt and the gap is beyond the noise (:func:`judge_depths`)."""
    lines = []
    noise = _noise(curves)
    for residual in (False, True):
        finished = sorted((c for c in curves if bool(c["residual"]) == residual and _final(c, "train") is not None), key=lambda c: c["depth"])
        if len(finished) < 2:
            continue
        shallow, deep = finished[0], finished[-1]
        a, b = _final(shallow, "train"), _final(deep, "train")
        assert a is not None and b is not None
        claim = "degradation" if not residual else "deeper ResNets train at least as well"
        verdict, why = judge_depths(shallow, deep, noise)
        lines.append(f"- {_net(deep['depth'], residual)} vs {_net(shallow['depth'], residual)}: training error {b:.2f} % vs "
                     f"{a:.2f} %; {claim}: {verdict} ({why}).")
    by_key = {(c["depth"], bool(c["residual"])): c for c in curves}
    for depth in sorted({c["depth"] for c in curves}):
        p, r = by_key.get((depth, False)), by_key.get((depth, True))
        if p and r and _final(p, "train") is not None and _final(r, "train") is not None:
            pt, rt = _final(p, "train"), _final(r, "train")
            assert pt is not None and rt is not None
            word = "within the noise" if abs(rt - pt) <= 2 * noise else "lower" if rt < pt else "not lower"
            lines.append(f"- depth {depth}: ResNet training error {rt:.2f} % vs plain {pt:.2f} % ({word} with shortcuts).")
    return lines


def degradation_verdict(curves: Sequence[dict[str, Any]]) -> str:
    """One line for the terminal: what the run shows about degradation, and why when it shows nothing."""
    plain = sorted((c for c in curves if not c["residual"] and _final(c, "train") is not None), key=lambda c: c["depth"])
    if len(plain) < 2:
        return "degradation: inconclusive (fewer than two finished plain nets)"
    verdict, why = judge_depths(plain[0], plain[-1], _noise(curves))
    return f"degradation: {verdict} ({why})"


def degradation_markdown(curves: Sequence[dict[str, Any]], setup: str, data: str | None = None) -> str:
    """The table of final errors and the verdicts; the paper's ResNet test errors only beside results on
    :data:`PAPER_CIFAR_DATA` (the paper's figures are CIFAR-10's)."""
    from ..reference import PAPER_CIFAR_ERR

    paper = data == PAPER_CIFAR_DATA
    depths = sorted({int(c["depth"]) for c in curves})
    by_key = {(int(c["depth"]), bool(c["residual"])): c for c in curves}
    lines = [
        "# Degradation: plain vs residual networks (paper Fig. 6)",
        "",
        setup,
        "",
        "Final errors (%) at the last evaluation: training error = mean top-1 error of the (augmented) mini-batches of the "
        "last evaluation interval, test error = the whole test set.",
        "",
        "| depth | plain train | plain test | ResNet train | ResNet test |" + (" paper ResNet test |" if paper else "")
        + " iterations (plain / ResNet) |",
        "|---:|---:|---:|---:|---:|" + ("---:|" if paper else "") + "---|",
    ]
    for d in depths:
        p, r = by_key.get((d, False)), by_key.get((d, True))
        cells = [str(d)]
        for c in (p, r):
            cells += [_fmt(_final(c, "train"), 2), _fmt(_final(c, "test"), 2)] if c else ["-", "-"]
        if paper:
            cells.append(f"{PAPER_CIFAR_ERR[d]:.2f}" if d in PAPER_CIFAR_ERR else "-")
        cells.append(" / ".join(_iters(c) for c in (p, r)))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        ("The paper gives plain-net results on CIFAR-10 only as curves (Fig. 6, left: plain-20/32/44/56 training error "
         "rises with depth), no numbers; its ResNet test errors are from Table 6 (64k iterations)." if paper else
         f"The paper's figures are for CIFAR-10; this run trained on {data or 'another data set'}, so none are shown beside it."),
        "",
        "## What this run shows",
        "",
        *(claim_checks(curves) or ["- not enough finished runs to compare depths yet."]),
    ]
    return "\n".join(lines)


def _iters(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    text = str(c.get("iterations") or "?")
    return text if c.get("status") == "done" else f"{c.get('steps', '?')} of {text} (unfinished)"


def depth_table_rows(curves: Sequence[dict[str, Any]], *, imagenet: bool = False, data: str | None = PAPER_CIFAR_DATA) -> list[dict[str, Any]]:
    """One row per (kind, depth): test errors of its finished runs, mean, std (sample, as the paper's ±) and best.

    ``paper``: Table 6 (CIFAR-10 ResNets), or with ``imagenet`` the 10-crop top-1 errors of Table 2
    (plain-18/34, ResNet-18) and Table 4 (ResNet-34 and deeper, option B like our ResNets).
    """
    from ..reference import PAPER_CIFAR_110_MEAN_STD, PAPER_CIFAR_ERR, PAPER_IMAGENET_10CROP_TOP1_ERR, PAPER_PLAIN_10CROP_TOP1_ERR

    groups: dict[tuple[bool, int], list[float]] = {}
    for c in curves:
        err = _final(c, "test")
        key = (bool(c["residual"]), int(c["depth"]))
        groups.setdefault(key, [])
        if err is not None and c.get("status") == "done":
            groups[key].append(err)
    rows = []
    for (residual, depth), errs in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        row: dict[str, Any] = {"network": _net(depth, residual), "depth": depth, "residual": residual, "runs": len(errs), "test_errors": errs}
        row["mean"] = statistics.fmean(errs) if errs else None
        row["std"] = statistics.stdev(errs) if len(errs) > 1 else None
        row["best"] = min(errs) if errs else None
        if imagenet:
            row["paper"] = (PAPER_IMAGENET_10CROP_TOP1_ERR if residual else PAPER_PLAIN_10CROP_TOP1_ERR).get(depth)
        else:  # the paper's CIFAR-10 figures, beside results on CIFAR-10 only
            row["paper"] = PAPER_CIFAR_ERR.get(depth) if residual and data == PAPER_CIFAR_DATA else None
        if residual and depth == 110 and not imagenet and data == PAPER_CIFAR_DATA:
            row["paper_mean_std"] = list(PAPER_CIFAR_110_MEAN_STD)
        rows.append(row)
    return rows


def depth_table_markdown(rows: Sequence[dict[str, Any]], setup: str, *, imagenet: bool = False) -> str:
    title = "# Error against depth (paper Table 2, ImageNet layout)" if imagenet else "# Test error against depth (paper Table 6, CIFAR-10)"
    lines = [
        title,
        "",
        setup,
        "",
        "Error = top-1 error (%) of the final weights on the test split (`val/` for ImageNet-layout data), as the trainer "
        "evaluates it (one centre view)." + (" The paper's ImageNet figures are 10-crop top-1 errors." if imagenet else ""),
        "",
        "| network | finished runs | test error % (mean ± std) | best | per run | paper |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        if r["mean"] is None:
            mean = "-"
        elif r["std"] is None:
            mean = f"{r['mean']:.2f}"
        else:
            mean = f"{r['mean']:.2f} ± {r['std']:.2f}"
        paper = "-" if r["paper"] is None else f"{r['paper']:.2f}"
        if r.get("paper_mean_std"):
            m, s = r["paper_mean_std"]
            paper += f" (best of 5; {m:.2f} ± {s:.2f})"
        per_run = ", ".join(f"{e:.2f}" for e in r["test_errors"]) or "-"
        lines.append(f"| {r['network']} | {r['runs']} | {mean} | {_fmt(r['best'], 2)} | {per_run} | {paper} |")
    lines += ["", "Mean ± std over runs uses the sample standard deviation, as the paper's 6.61 ± 0.16 over 5 runs for ResNet-110."]
    return "\n".join(lines)
