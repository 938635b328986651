"""Which networks one experiment trains (:class:`RunPlan`) and what they all share (:class:`TrainSettings`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from ...errors import UsageError

Status = Literal["done", "partial", "new"]
ProgressFn = Callable[[str], None]  # where an experiment reports what it is doing (one line per call)


@dataclass(frozen=True)
class RunPlan:
    name: str  # folder name: "plain20", "resnet56", "resnet110-run2"
    model: str  # network name: "plain20", "resnet110"
    depth: int
    residual: bool
    seed: int
    folder: Path


@dataclass(frozen=True)
class TrainSettings:
    """What every run of one experiment shares (and what a finished run must have been trained with)."""

    data: str
    data_dir: str | None
    recipe: str
    iterations: int
    overrides: tuple[str, ...] = ()  # recipe fields as KEY=VALUE, budget's first, then the user's overrides
    device: str = "cpu"
    budget: str = ""  # name only, for the tables; what it means is in iterations and overrides

    def identity(self, plan: RunPlan) -> dict[str, Any]:
        # Device and data location may change between sessions (resume on another machine); these may not.
        return {"model": plan.model, "seed": plan.seed, "data": self.data, "recipe": self.recipe,
                "iterations": self.iterations, "overrides": list(self.overrides)}


def plan_runs(
    out: Path, depths: Sequence[int], *, plain: bool = True, residual: bool = True, runs: int = 1, seed: int = 0
) -> list[RunPlan]:
    """Plain and/or residual nets of each depth; run k > 1 of a net is ``<net>-run<k>`` with seed ``seed + k - 1``.

    Run 1 keeps the bare name, so a depth table and a degradation experiment pointed at the same
    ``out`` share their ResNet runs.
    """
    if runs < 1:
        raise UsageError(f"`runs` must be at least 1, got {runs}")
    kinds = [k for k, on in (("plain", plain), ("resnet", residual)) if on]
    plans = []
    for kind in kinds:
        for depth in depths:
            for k in range(1, runs + 1):
                model = f"{kind}{depth}"
                name = model if k == 1 else f"{model}-run{k}"
                plans.append(RunPlan(name, model, depth, kind == "resnet", seed + k - 1, out / "runs" / name))
    return plans
