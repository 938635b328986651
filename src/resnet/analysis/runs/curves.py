"""The error curves of an experiment's runs, read back from the trainer's ``metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ...train.metrics import METRICS_FILE, read_metrics
from .folders import read_marker
from .plans import RunPlan, Status


def finite_value(v: Any) -> float | None:
    """``v`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _points(records: Sequence[dict[str, Any]], key: str) -> list[list[float]]:
    return [[r["step"], v] for r in records if (v := finite_value(r.get(key))) is not None]


def _records(folder: Path) -> list[dict[str, Any]]:
    """The run's records in step order; a record repeated by a resume counts once (the one logged last)."""
    by_key: dict[tuple[str, int], dict[str, Any]] = {}
    for r in read_metrics(folder / METRICS_FILE):
        if isinstance(r.get("step"), int):
            by_key[(str(r.get("kind")), r["step"])] = r
    return sorted(by_key.values(), key=lambda r: r["step"])


def read_curves(plans: Sequence[RunPlan]) -> list[dict[str, Any]]:
    """Error curves of every planned run that has a training log, in plan order.

    Each curve: ``name``, ``model``, ``depth``, ``residual``, ``seed``, ``status`` (``done`` /
    ``partial``), ``iterations`` (asked for), ``steps`` (reached), ``train``, ``test`` and ``holdout``
    as ``[[iteration, error %], ...]``, and ``final_{train,test,holdout}_error`` from the last
    evaluation (training error = mean mini-batch error over the last evaluation interval).

    ``train`` is the trainer's training log (one point per logging interval, denser than the
    evaluations); a run shorter than one logging interval uses the evaluations' training windows.
    """
    curves = []
    for plan in plans:
        records = _records(plan.folder)
        train = [r for r in records if r.get("kind") == "train"]
        evals = [r for r in records if r.get("kind") == "eval"]
        if not train and not evals:
            continue
        train_points = _points(train, "error")
        if len(train_points) < len(evals):
            train_points = _points(evals, "train_error")
        last = evals[-1] if evals else {}
        marker = read_marker(plan.folder) or {}
        curves.append({
            "name": plan.name, "model": plan.model, "depth": plan.depth, "residual": plan.residual, "seed": plan.seed,
            "status": _status(plan.folder, marker),
            "iterations": marker.get("iterations") or _recipe_iterations(plan.folder),
            "steps": records[-1]["step"],
            "train": train_points, "test": _points(evals, "test_error"), "holdout": _points(evals, "holdout_error"),
            "final_train_error": finite_value(last.get("train_error")), "final_test_error": finite_value(last.get("test_error")),
            "final_holdout_error": finite_value(last.get("holdout_error")),
            "seconds": finite_value(marker.get("seconds")),
            "classes": _class_count(plan.folder),
        })
    return curves


def _class_count(folder: Path) -> int | None:
    """How many classes the run's network tells apart (its checkpoint's metadata), for the chance level."""
    from ...models.interop import read_metadata

    for name in ("last.safetensors", "best.safetensors"):
        classes = read_metadata(folder / name).get("classes") if (folder / name).is_file() else None
        if classes:
            return len(classes)
    return None


def _status(folder: Path, marker: dict[str, Any]) -> Status:
    if marker:
        return "done" if marker.get("status") == "done" else "partial"
    # A folder trained by hand with `resnet train` has no marker; its summary says whether it finished.
    try:
        return "done" if json.loads((folder / "summary.json").read_text()).get("finished") else "partial"
    except (OSError, json.JSONDecodeError, AttributeError):
        return "partial"


def _recipe_iterations(folder: Path) -> int | None:
    try:
        value = json.loads((folder / "recipe.json").read_text())["recipe"]["iterations"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None
