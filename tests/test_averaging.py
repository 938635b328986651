"""The weight average's ramp, cadence and copy-back (train/averaging.py), identity-initialised convolutions
(train/dirac.py) and the batch-norm momentum, as a run builds them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet.errors import UsageError
from resnet.train import TrainOptions, Trainer, resolve_recipe
from resnet.train.averaging import ramped_decay, update_average, weight_average
from resnet.train.dirac import dirac_convs
from resnet.train.distributed import DistContext
from resnet.train.trainer import weights_digest

TINY = {"iterations": "6", "eval_every": "100", "log_every": "3", "batch_size": "32", "holdout": "100", "core_replicas": "1"}


def _trainer(out: Path, **overrides: str) -> Trainer:
    opts = TrainOptions(model="resnet8", data="digits", overrides={**TINY, **overrides}, out=out, progress=False,
                        tensorboard=False)
    trainer = Trainer(opts, torch.device("cpu"), DistContext())
    trainer.build()
    return trainer


def test_the_ramped_decay_grows_with_the_cube_of_progress_and_stops_at_the_full_decay() -> None:
    recipe = resolve_recipe("cifar-paper", {"ema_decay": "0.8", "ema_every": "5", "ema_ramp": "3", "iterations": "100"})
    assert ramped_decay(recipe, 4) == pytest.approx(0.8 * 0.2 ** 3)  # the 4th move comes after step 20 of 100
    assert ramped_decay(recipe, 20) == pytest.approx(0.8)
    assert ramped_decay(recipe, 25) == pytest.approx(0.8)  # never past the full decay
    assert ramped_decay(resolve_recipe("cifar-paper", {"ema_decay": "0.8"}), 1) == 0.8


def test_the_average_moves_every_k_steps_by_its_decay_and_copy_back_puts_it_into_the_model() -> None:
    recipe = resolve_recipe("cifar-paper", {"ema_decay": "0.5", "ema_every": "2", "ema_copy_back": "true",
                                            "iterations": "10"})
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    average = weight_average(model, recipe)
    assert average is not None
    update_average(average, model, recipe, iteration=2)  # the first move copies
    with torch.no_grad():
        model[0].weight.fill_(3.0)
        model[1].running_mean.fill_(4.0)
    update_average(average, model, recipe, iteration=3)  # not due: nothing moves, nothing is copied back
    assert torch.all(model[0].weight == 3.0) and torch.all(average.module[0].weight == 1.0)
    update_average(average, model, recipe, iteration=4)
    assert torch.all(average.module[0].weight == 2.0)  # 0.5 * 1 + 0.5 * 3
    assert torch.all(average.module[1].running_mean == 2.0)  # batch-norm statistics are averaged too
    assert torch.all(model[0].weight == 2.0) and torch.all(model[1].running_mean == 2.0)  # ... and copied back


def test_ema_copy_back_resumes_bit_for_bit_and_differs_from_a_plain_average(tmp_path: Path) -> None:
    """The ramp reads the average's own update count, which a checkpoint keeps, so a resumed run replays exactly."""
    levers = {"ema_decay": "0.7", "ema_every": "2", "ema_ramp": "1"}
    digests = {}
    for name, extra in (("plain", {}), ("back", {"ema_copy_back": "true"})):
        trainer = _trainer(tmp_path / name, **levers, **extra)
        stream = trainer.task.data.stream(0, 0)
        batches = [next(stream) for _ in range(6)]
        for batch in batches[:3]:
            trainer.step(*batch)
        saved = copy.deepcopy(trainer.state_dict())
        for batch in batches[3:]:
            trainer.step(*batch)
        digests[name] = weights_digest(trainer.model), weights_digest(trainer.eval_net)
        trainer.restore(saved)
        for batch in batches[3:]:
            trainer.step(*batch)
        assert (weights_digest(trainer.model), weights_digest(trainer.eval_net)) == digests[name]
        trainer.log_file.close()
    assert digests["back"][0] == digests["back"][1]  # step 6 moved the average and copied it back
    assert digests["plain"][0] != digests["plain"][1] and digests["back"][0] != digests["plain"][0]


def test_dirac_convolutions_pass_their_first_channels_through() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, bias=False), nn.Conv2d(5, 4, 3, stride=2, padding=1, bias=False))
    before = model[0].weight[3:].clone()
    assert dirac_convs(model) == 2
    x = torch.randn(2, 3, 8, 8)
    y = model[0](x)
    assert torch.equal(y[:, :3], x)  # the first three filters are the identity
    assert torch.equal(model[0].weight[3:], before)  # the others keep their initialisation
    assert torch.equal(model[1](y), y[:, :4, ::2, ::2])  # strided: the identity, subsampled


def test_a_run_builds_dirac_convolutions_and_the_asked_batch_norm_momentum(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", dirac_init="true", bn_momentum="0.4")
    convs = [m for m in trainer.model.modules() if isinstance(m, nn.Conv2d)]
    assert all(torch.equal(c.weight[0, 0, 1, 1], torch.tensor(1.0)) and c.weight[0, 1].abs().sum() == 0
               for c in convs if c.kernel_size == (3, 3) and c.in_channels > 1)
    norms = [m for m in trainer.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.4 for m in norms)
    trainer.log_file.close()
    default = _trainer(tmp_path / "default")
    assert all(m.momentum == 0.1 for m in default.model.modules() if isinstance(m, nn.BatchNorm2d))
    default.log_file.close()


@pytest.mark.parametrize("overrides, match", [
    ({"ema_every": "0"}, "ema_every must be in"),
    ({"ema_every": "7", "iterations": "6"}, r"ema_every must be in \[1, iterations\]"),
    ({"ema_ramp": "-1"}, "ema_ramp >= 0"),
    ({"ema_copy_back": "true", "lookahead_k": "5"}, "set one"),
    ({"bn_momentum": "1.5"}, "bn_momentum must be in"),
])
def test_averaging_and_batch_norm_settings_are_validated(overrides: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        resolve_recipe("cifar-paper", overrides)
