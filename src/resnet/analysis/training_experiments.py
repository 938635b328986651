"""Fig. 6 (degradation) and Table 6 / Table 2 (error against depth) as functions of a typed config.

Both train plain and residual nets through :mod:`resnet.analysis.runs` (finished runs kept, unfinished
ones resumed), read their logs back and write a figure, a markdown table and the raw JSON into ``out``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..data.registry import existing_dir
from ..errors import UsageError
from ..utils.device import resolve_device
from .configs import (DegradationConfig, DepthTableConfig, ExperimentResult, TrainingExperiment,
                      check_positive)
from .experiments import degradation_markdown, degradation_verdict, depth_table_markdown, depth_table_rows, write_json, write_text
from .plots import plot_degradation, plot_depth_table
from .runs import RunOutcome, RunPlan, TrainSettings, budget_settings, describe_settings, execute, plan_runs, read_curves
from .runs import settings_from_markers
from .runs.plans import ProgressFn


def run_degradation(config: DegradationConfig, *, progress: ProgressFn | None = None) -> ExperimentResult:
    """Train (or resume, or keep) plain and residual nets of ``config.depths`` alike; draw Fig. 6."""
    plans = plan_runs(config.out, config.checked_depths(), seed=config.seed)
    settings, setup = _training_setup(config, plans)
    outcomes = _train_all(config, plans, settings, progress)
    curves = _curves(config, plans)
    data_name = settings.data if settings is not None else config.data
    data = {"setup": setup, "settings": _settings_dict(settings), "curves": curves, "verdict": degradation_verdict(curves)}
    files = (
        plot_degradation(curves, config.out / "degradation.png", title=_degradation_title(data_name, curves)),
        write_text(config.out / "degradation.md", degradation_markdown(curves, setup, data_name)),
        write_json(config.out / "degradation.json", data),
    )
    return ExperimentResult(files, data, _unfinished(outcomes))


def run_depth_table(config: DepthTableConfig, *, progress: ProgressFn | None = None) -> ExperimentResult:
    """Train ``config.runs`` seeds of each depth; tabulate mean ± std beside the paper's Table 6 (Table 2)."""
    imagenet = config.imagenet
    plans = plan_runs(config.out, config.checked_depths(), plain=config.plain or imagenet, runs=config.runs,
                      seed=config.seed)
    settings, setup = _training_setup(config, plans)
    outcomes = _train_all(config, plans, settings, progress)
    curves = _curves(config, plans)
    rows = depth_table_rows(curves, imagenet=imagenet, data=settings.data if settings is not None else config.data)
    title = "ImageNet-layout data: validation error against depth (paper Table 2)" if imagenet else ""
    data = {"setup": setup, "settings": _settings_dict(settings), "rows": rows, "curves": curves}
    files = (
        plot_depth_table(rows, config.out / "depth_table.png", title=title),
        write_text(config.out / "depth_table.md", depth_table_markdown(rows, setup, imagenet=imagenet)),
        write_json(config.out / "depth_table.json", data),
    )
    return ExperimentResult(files, data, _unfinished(outcomes))


def _training_setup(config: TrainingExperiment, plans: list[RunPlan]) -> tuple[TrainSettings | None, str]:
    """Settings shared by every run, and a one-paragraph description for the tables."""
    if config.plot_only:
        settings = settings_from_markers(plans)
        return settings, describe_settings(settings, config.budget if settings is None else None)
    check_positive("parallel", config.parallel)
    settings = budget_settings(
        config.budget, data=config.data, data_dir=config.data_dir, iterations=config.iterations,
        device=str(resolve_device(config.device)), overrides=list(config.overrides),
    )
    return settings, describe_settings(settings)


def _train_all(config: TrainingExperiment, plans: list[RunPlan], settings: TrainSettings | None,
               progress: ProgressFn | None) -> list[RunOutcome]:
    if config.plot_only or settings is None:
        return []
    existing_dir(config.data_dir)
    return execute(plans, settings, parallel=config.parallel, progress=progress)


def _curves(config: TrainingExperiment, plans: list[RunPlan]) -> list[dict[str, Any]]:
    curves = read_curves(plans)
    if not curves:
        raise UsageError(f"no run folders with training logs under {config.out / 'runs'}; run without `plot_only` first")
    return curves


def _unfinished(outcomes: list[RunOutcome]) -> tuple[tuple[str, str], ...]:
    return tuple((o.plan.name, o.error) for o in outcomes if o.error)


def _degradation_title(data: str, curves: list[dict[str, Any]]) -> str:
    steps = max((int(c.get("steps") or 0) for c in curves), default=0)
    return f"Training on {data} (paper Fig. 6, {steps:,} iterations): dashed = training error, bold = test error"


def _settings_dict(settings: TrainSettings | None) -> dict[str, Any] | None:
    return None if settings is None else asdict(settings)
