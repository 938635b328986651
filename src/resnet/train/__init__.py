"""Training: the paper's recipes on real data, resumable checkpoints, DDP through torchrun."""

from typing import TYPE_CHECKING

from ..utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from .precision import autocast_dtype
    from .recipes import RECIPES, Recipe, get_recipe, parse_overrides, resolve_recipe
    from .stopping import TrainingDiverged, TrainingInterrupted
    from .tasks import Task, default_model, default_recipe, evaluate, make_task
    from .trainer import Trainer, TrainOptions, train

_EXPORTS = exports({
    "trainer": ["TrainOptions", "Trainer", "train"],
    "tasks": ["Task", "make_task", "evaluate", "default_recipe", "default_model"],
    "precision": ["autocast_dtype"],
    "stopping": ["TrainingDiverged", "TrainingInterrupted"],
    "recipes": ["RECIPES", "Recipe", "get_recipe", "resolve_recipe", "parse_overrides"],
})
__all__ = list(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)  # the recipes need no PyTorch
