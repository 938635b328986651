"""Ghost batch norm (train/ghost.py, recipe field ``ghost_batch``): each group of a training batch normalised on
its own, running statistics following the whole batch, plain batch norm in evaluation and in the saved weights."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet.errors import UsageError
from resnet.train import TrainOptions, train
from resnet.train.ghost import GhostBatchNorm2d, ghost_batch_norm
from resnet.train.recipes import resolve_recipe


def _pair(ghost: int) -> tuple[nn.BatchNorm2d, nn.BatchNorm2d]:
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(3)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5)
        plain.bias.uniform_(-0.5, 0.5)
    holder = nn.Sequential(copy.deepcopy(plain))
    assert ghost_batch_norm(holder, ghost) == 1 and isinstance(holder[0], GhostBatchNorm2d)
    return plain, holder[0]


def test_one_group_is_batch_norm_and_groups_are_normalised_alone() -> None:
    x = torch.randn(8, 3, 5, 5) * 3 + 1
    plain, ghost = _pair(8)  # one group: exactly batch norm, gradients included
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = plain(xa), ghost(xb)
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=0)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad)
    torch.testing.assert_close(ghost.running_var, plain.running_var)

    plain, ghost = _pair(4)  # two groups of 4: each is batch norm of its half
    halves = [copy.deepcopy(plain) for _ in range(2)]
    expected = torch.cat([bn(part) for bn, part in zip(halves, x.tensor_split(2))])
    torch.testing.assert_close(ghost(x), expected)
    torch.testing.assert_close(ghost.running_mean, (halves[0].running_mean + halves[1].running_mean) / 2)
    torch.testing.assert_close(ghost.running_var, (halves[0].running_var + halves[1].running_var) / 2)
    assert int(ghost.num_batches_tracked) == 1
    ghost.eval()
    plain.load_state_dict(ghost.state_dict())
    plain.eval()
    torch.testing.assert_close(ghost(x), plain(x), rtol=0, atol=0)  # evaluation: plain batch norm


def test_a_run_with_ghost_batch_norm_saves_plain_batch_norm_weights(tmp_path: Path) -> None:
    from resnet import create_model
    from resnet.models.interop import read_state_dict

    sets = {"iterations": "4", "eval_every": "4", "log_every": "2", "batch_size": "32", "holdout": "0", "ghost_batch": "8"}
    summary = train(TrainOptions(model="resnet8", data="digits", overrides=sets, out=tmp_path, progress=False, tensorboard=False))
    assert summary["recipe"]["ghost_batch"] == 8 and summary["final"]["test_error"] is not None
    state, _ = read_state_dict(tmp_path / "last.safetensors")
    fresh = create_model("resnet8", num_classes=10, in_chans=1)
    fresh.load_state_dict(state)  # the same keys and shapes as without it


def test_bad_ghost_batch_is_refused() -> None:
    with pytest.raises(UsageError, match="ghost_batch must be >= 0|ghost_batch must be"):
        resolve_recipe("cifar-paper", {"ghost_batch": "-1"})
    with pytest.raises(UsageError, match="ghost_batch normalises groups"):
        resolve_recipe("cifar-paper", {"ghost_batch": "32", "sync_bn": "true"})
