"""Named run lengths (``budget``) and the settings every run of an experiment trains with.

Budgets are data: one :class:`Budget` per name in :data:`BUDGETS`, from which the command line's
choices and help are built, so a new budget is one entry. Lengths, milestones and evaluation intervals
come from the recipes (:mod:`resnet.train.recipes`); a budget only says how many iterations to keep.
Free of PyTorch: ``resnet --help`` reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ...errors import UsageError
from ...train.recipes import RECIPES, parse_overrides, resolve_recipe
from .plans import TrainSettings

# Reduced: what 8 CIFAR nets train in ~90 min on 2 cores; medium: the shortest run at which both of the paper's
# orderings held. The measurements behind both: docs/results/degradation/README.md ("Budgets").
REDUCED_ITERATIONS = 700
MEDIUM_ITERATIONS = 4_000
TINY_ITERATIONS = 24
EVALUATIONS_PER_RUN = 10  # points on each test-error curve (the paper's Fig. 6 curves are smooth; 10 show the shape)
# ImageNet-layout data trains the ImageNet nets with the paper's ImageNet recipe; everything else the
# CIFAR nets with the paper's CIFAR recipe (digits too: the experiments run the paper's schedule, not
# the trainer's short digits recipe).
IMAGENET_DATA = ("imagenet",)
# Data sets too small for the recipe's 5k hold-out: keep this many training images aside instead.
SMALL_DATA_HOLDOUT = {"digits": 150}
# Data sets whose experiment runs train on the whole training set, as the paper's CIFAR nets did.
PAPER_FULL_TRAIN_SET = ("cifar10", "cifar100")


@dataclass(frozen=True)
class Budget:
    """One named run length. ``iterations=None``: the recipe's own length (the recipe untouched)."""

    name: str
    iterations: int | None
    help: str
    overrides: tuple[str, ...] = ()  # recipe fields (KEY=VALUE) this budget sets besides the length


def _k(iterations: int) -> str:
    return f"{iterations // 1000}k" if iterations % 1000 == 0 else f"{iterations:,}"


BUDGETS: dict[str, Budget] = {
    b.name: b
    for b in (
        Budget("paper", None, f"the data set's full recipe (cifar-paper: {_k(RECIPES['cifar-paper'].iterations)} iterations)"),
        Budget("reduced", REDUCED_ITERATIONS, f"{REDUCED_ITERATIONS} iterations with the same schedule shape, sized to "
               "train the 8 nets of depths 20-56 in about 90 minutes on a 2-core CPU"),
        Budget("medium", MEDIUM_ITERATIONS, f"{MEDIUM_ITERATIONS:,} iterations, each residual branch's last BN "
               "starting at zero: plain nets train worse and ResNets better with depth (resumable; about 75 minutes "
               "for depths 20/32/56, two at a time, on a 2-core AVX-512 CPU)", overrides=("zero_init_residual=true",)),
        Budget("tiny", TINY_ITERATIONS, f"{TINY_ITERATIONS} iterations, a smoke test"),
    )
}
DEFAULT_BUDGET = "reduced"


def budgets_help() -> str:
    """One line naming every budget and what it means (the command line's help)."""
    return "; ".join(f"{b.name}: {b.help}" for b in BUDGETS.values()) + f" (default {DEFAULT_BUDGET})"


def paper_recipe(data: str) -> str:
    """The paper's recipe for the networks trained on ``data`` (see :data:`IMAGENET_DATA`)."""
    return "imagenet-paper" if data in IMAGENET_DATA else "cifar-paper"


def get_budget(name: str) -> Budget:
    try:
        return BUDGETS[name]
    except KeyError:
        *others, last = BUDGETS
        raise UsageError(f"unknown `budget` {name!r}; choose {', '.join(others)} or {last}") from None


def budget_iterations(budget: str, override: int | None = None, recipe: str = "cifar-paper") -> int:
    """Iterations of one run: ``override`` when given, else the budget's, else the recipe's."""
    if override is not None:
        if override < 1:
            raise UsageError(f"`iterations` must be positive, got {override}")
        return override
    n = get_budget(budget).iterations
    return RECIPES[recipe].iterations if n is None else n


def budget_settings(
    budget: str,
    *,
    data: str,
    data_dir: str | None = None,
    iterations: int | None = None,
    device: str = "cpu",
    overrides: Sequence[str] = (),
) -> TrainSettings:
    """What every run of the experiment trains with.

    ``paper`` is the data set's recipe untouched. Any other length overrides only ``iterations``
    (the trainer then scales the lr milestones, so the schedule keeps its shape: ÷10 at 50 % and
    75 %) and ``eval_every`` (:data:`EVALUATIONS_PER_RUN` points per test curve). The user's
    ``overrides`` come last, so they win; the run length itself is set with ``iterations`` only,
    since it is part of what identifies a finished run.
    """
    recipe = paper_recipe(data)
    n = budget_iterations(budget, iterations, recipe)
    user = parse_overrides(list(overrides))
    if "iterations" in user:
        raise UsageError("give the run length with `iterations` N (or `budget`), not `overrides` iterations=...")
    items: list[str] = []
    if n != RECIPES[recipe].iterations:
        items += [f"iterations={n}", f"eval_every={max(1, n // EVALUATIONS_PER_RUN)}"]
    items += [o for o in get_budget(budget).overrides if o.partition("=")[0] not in user]
    if data in SMALL_DATA_HOLDOUT and "holdout" not in user:
        items.append(f"holdout={SMALL_DATA_HOLDOUT[data]}")
    elif data in PAPER_FULL_TRAIN_SET and "holdout" not in user:
        # The paper fixed its CIFAR schedule on a 45k/5k split, then trained the reported nets on all
        # 50k images; that also spares a third of every evaluation (the curves need the test set only).
        items.append("holdout=0")
    items += [f"{k}={v}" for k, v in user.items()]
    settings = TrainSettings(data, data_dir, recipe, n, tuple(items), device, budget)
    # A misspelt field fails now, not after the first network has trained.
    resolve_recipe(settings.recipe, parse_overrides(list(settings.overrides)))
    return settings


def describe_settings(settings: TrainSettings | None, budget: str | None = None) -> str:
    """One paragraph for the tables: recipe, length, schedule, evaluations, data, seed."""
    if settings is None:
        return f"No run folder recorded its settings (budget {budget or '?'} asked for)."
    try:
        recipe = resolve_recipe(settings.recipe, parse_overrides(list(settings.overrides)))
    except UsageError:
        recipe = None  # a folder from another version of the recipes: describe what is known
    schedule = ""
    if recipe is not None and recipe.schedule == "step" and recipe.milestones:
        marks = " and ".join(f"{m:,}" for m in recipe.milestones)
        schedule = f" (SGD, batch {recipe.batch_size}, lr {recipe.lr:g} ÷{1 / recipe.gamma:g} at iterations {marks})"
    every = None if recipe is None else recipe.evaluation_interval
    evals = "" if every is None else f", evaluated every {'iteration' if every == 1 else f'{every:,} iterations'}"
    changed = ", ".join(f"`{o}`" for o in settings.overrides) or "none"
    where = f" from `{settings.data_dir}`" if settings.data_dir else ""
    name = f"budget `{settings.budget}`, " if settings.budget else ""
    return (
        f"Training: recipe `{settings.recipe}`{schedule}, {settings.iterations:,} iterations ({name}recipe overrides: "
        f"{changed}){evals}. Data: {settings.data}{where}. Every network trains from the same seed (the k-th repeat of a "
        f"network from seed + k - 1); device {settings.device}."
    )
