"""Training: the paper's recipes on real data, resumable checkpoints, DDP through torchrun."""

from .loop import TrainingDiverged, TrainingInterrupted, TrainOptions, autocast_dtype, evaluate, train
from .recipes import RECIPES, Recipe, get_recipe, parse_overrides, resolve_recipe

__all__ = ["TrainOptions", "train", "evaluate", "autocast_dtype", "TrainingDiverged", "TrainingInterrupted",
           "RECIPES", "Recipe", "get_recipe", "resolve_recipe", "parse_overrides"]
