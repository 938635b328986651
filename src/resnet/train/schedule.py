"""Learning rate as a function of the step (and, for two schedules, of what training has seen so far); the
side of the training images as a function of the step (progressive resizing).

Kept as a small object with an explicit state dict instead of ``torch.optim.lr_scheduler`` because
two of the paper's rules depend on measurements (the warm-up ends when the training error falls below
80%; the ImageNet rate drops when the error plateaus), and that state must survive ``--resume``.
"""

from __future__ import annotations

import math
from typing import Any

from .recipes import Recipe


class LRSchedule:
    def __init__(self, recipe: Recipe, depth: int | None = None) -> None:
        self.recipe = recipe
        self.warming_up = recipe.schedule == "step" and depth is not None and depth >= recipe.warmup_min_depth
        self.plateau_drops = 0
        self.best_error = float("inf")
        self.evals_since_best = 0

    def lr(self, step: int) -> float:
        """Rate for the update that follows ``step`` completed updates."""
        r = self.recipe
        if r.schedule == "step":
            if self.warming_up:
                return r.lr * r.warmup_factor
            return r.lr * r.gamma ** sum(step >= m for m in r.milestones)
        if r.schedule == "plateau":
            return r.lr * r.gamma**self.plateau_drops
        if r.schedule == "warmup-cosine":  # linear warm-up over `warmup` iterations, then half a cosine down to 0
            if step < r.warmup:
                return r.lr * (r.warmup_factor + (1.0 - r.warmup_factor) * step / r.warmup)
            span = max(1, r.iterations - r.warmup)
            return 0.5 * r.lr * (1.0 + math.cos(math.pi * min(1.0, (step - r.warmup) / span)))
        t = min(step / r.iterations, 1.0)
        if r.schedule == "linear":
            return r.lr * (1.0 - t)
        start = r.lr * r.warmup_factor
        if r.schedule == "cosine":  # linear warm-up over pct_start of the run, then half a cosine down to 0
            if t < r.pct_start:
                return start + (r.lr - start) * t / r.pct_start
            return 0.5 * r.lr * (1.0 + math.cos(math.pi * (t - r.pct_start) / (1.0 - r.pct_start)))
        # onecycle: linear up, then linear down to zero
        if t < r.pct_start:
            return start + (r.lr - start) * t / r.pct_start
        return r.lr * (1.0 - t) / (1.0 - r.pct_start)

    def observe_training_error(self, step: int, error_percent: float) -> bool:
        """End the warm-up once training error is below the threshold (or its cap is reached)."""
        if self.warming_up and (error_percent < self.recipe.warmup_until_error or step >= self.recipe.warmup_max_iterations):
            self.warming_up = False
            return True
        return False

    def observe_holdout_error(self, error_percent: float) -> bool:
        if self.recipe.schedule != "plateau":
            return False
        if error_percent < self.best_error - 1e-9:
            self.best_error = error_percent
            self.evals_since_best = 0
            return False
        self.evals_since_best += 1
        if self.evals_since_best >= self.recipe.patience:
            self.plateau_drops += 1
            self.evals_since_best = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"warming_up": self.warming_up, "plateau_drops": self.plateau_drops,
                "best_error": self.best_error, "evals_since_best": self.evals_since_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.warming_up = bool(state["warming_up"])
        self.plateau_drops = int(state["plateau_drops"])
        self.best_error = float(state["best_error"])
        self.evals_since_best = int(state["evals_since_best"])


#: Progressive resizing grows the training images this many pixels at a time (FFCV rounds ImageNet's sides to
#: 32 of 160-192 px; 4 of CIFAR's 32 is the same share, and each side it visits costs a warm-up of its kernels).
RESIZE_STEP_PX = 4


def train_side(recipe: Recipe, step: int, full: int) -> int:
    """The side of the training images at ``step`` for images of side ``full``: ``recipe.resize_from`` at the
    start, growing linearly (rounded down to :data:`RESIZE_STEP_PX`) to ``full`` at ``resize_until`` of the run."""
    if not recipe.resize_from or recipe.resize_from >= full:
        return full
    t = step / (recipe.resize_until * recipe.iterations)
    if t >= 1.0:
        return full
    side = recipe.resize_from + t * (full - recipe.resize_from)
    return min(full, recipe.resize_from + int(side - recipe.resize_from) // RESIZE_STEP_PX * RESIZE_STEP_PX)
