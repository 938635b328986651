"""Ghost batch norm (Hoffer et al. 2017, "Train longer, generalize better"): in training, each group of
``size`` images of a batch is normalised by its own statistics, as if the batch were that small, while the
running statistics follow the whole batch. Page (2019) trained ResNet-9 with groups of 32 out of 512.

The layers keep :class:`torch.nn.BatchNorm2d`'s parameters and buffers, so a trained network's weights are
ordinary batch-norm weights, and in evaluation it is plain batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GhostBatchNorm2d(nn.BatchNorm2d):
    """:class:`~torch.nn.BatchNorm2d` that, in training, normalises each group of ``ghost`` images on its own."""

    ghost: int = 0

    def forward(self, x: Tensor) -> Tensor:
        groups = x.shape[0] // self.ghost if self.ghost else 1
        if not self.training or groups < 2:
            return super().forward(x)
        # each group's statistics land in its own buffers (momentum 1: the group's mean and unbiased variance)
        means = self.running_mean.new_zeros(groups, self.num_features) if self.track_running_stats else [None] * groups
        variances = self.running_var.new_ones(groups, self.num_features) if self.track_running_stats else [None] * groups
        out = torch.cat([F.batch_norm(part, means[i], variances[i], self.weight, self.bias, True, 1.0, self.eps)
                         for i, part in enumerate(x.tensor_split(groups))])
        if self.track_running_stats:
            self._follow(means.mean(0), variances.mean(0))
        return out

    @torch.no_grad()
    def _follow(self, mean: Tensor, var: Tensor) -> None:
        """Running mean and (unbiased) variance move towards the groups' averages, once per batch, as
        :class:`~torch.nn.BatchNorm2d` moves them towards the batch's."""
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean, momentum)
        self.running_var.lerp_(var, momentum)


def ghost_batch_norm(model: nn.Module, size: int) -> int:
    """Every :class:`~torch.nn.BatchNorm2d` of ``model`` made ghost batch norm over groups of ``size`` images, in
    place (same parameters and buffers); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = GhostBatchNorm2d
            module.ghost = size
            count += 1
    return count
