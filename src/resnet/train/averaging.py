"""The weight average a recipe asks for (``ema_decay``, ``ema_every``, ``ema_ramp``, ``ema_copy_back``).

An exponential moving average of the weights and batch-norm statistics (PyTorch's ``AveragedModel``). With a ramp
its decay grows with the run, ``ema_decay * (step / iterations) ** ema_ramp``: early on the average follows the
weights, at the end it averages strongly. With copy-back the training weights restart from the average after
every move, Lookahead's pull-back with that rising decay (hlb-cifar10; Jordan 2024's airbench94). The decay is a
function of the average's own update count, so a resumed run (which restores that count) replays exactly.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .recipes import Recipe


def ramped_decay(recipe: Recipe, updates: int) -> float:
    """The decay of the ``updates``-th move of the average (counting from 1)."""
    if not recipe.ema_ramp:
        return recipe.ema_decay
    progress = min(1.0, updates * recipe.ema_every / recipe.iterations)
    return recipe.ema_decay * progress ** recipe.ema_ramp


def weight_average(model: nn.Module, recipe: Recipe) -> AveragedModel | None:
    """The recipe's average of ``model`` (``None`` without ``ema_decay``)."""
    if not recipe.ema_decay:
        return None
    if not recipe.ema_ramp:
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)

    def ramped(averaged: Sequence[Tensor], current: Sequence[Tensor], updates: Tensor) -> None:
        # `updates` counts the moves before this one; the first move (a copy) happened at updates == 0
        get_ema_multi_avg_fn(ramped_decay(recipe, int(updates) + 1))(averaged, current, updates)

    return AveragedModel(model, multi_avg_fn=ramped, use_buffers=True)


@torch.no_grad()
def update_average(average: AveragedModel, model: nn.Module, recipe: Recipe, iteration: int) -> None:
    """After optimizer step ``iteration`` (counting from 1): move the average when it falls due, and with
    ``ema_copy_back`` put the averaged weights and statistics back into ``model``."""
    if iteration % recipe.ema_every:
        return
    average.update_parameters(model)
    if recipe.ema_copy_back:
        for mine, averaged in zip([*model.parameters(), *model.buffers()],
                                  [*average.module.parameters(), *average.module.buffers()]):
            mine.copy_(averaged)
