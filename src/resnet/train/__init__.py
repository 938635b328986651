"""Training: the paper's recipes on real data, resumable checkpoints, DDP through torchrun."""

from typing import TYPE_CHECKING

from ..utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from .loop import TrainingDiverged, TrainingInterrupted, TrainOptions, autocast_dtype, evaluate, train
    from .recipes import RECIPES, Recipe, get_recipe, parse_overrides, resolve_recipe

_EXPORTS = exports({
    "loop": ["TrainOptions", "train", "evaluate", "autocast_dtype", "TrainingDiverged", "TrainingInterrupted"],
    "recipes": ["RECIPES", "Recipe", "get_recipe", "resolve_recipe", "parse_overrides"],
})
__all__ = list(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)  # the recipes need no PyTorch
