"""The Trainer's parts driven from Python: build, step, state_dict / restore; the optimizer's group plan; the views;
the weight average's ramp, cadence and copy-back; identity-initialised convolutions and the batch-norm momentum."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

import resnet
from resnet.errors import UsageError
from resnet.inference.views import eval_views, shift_views, translate
from resnet.train import TrainOptions, Trainer, get_recipe, resolve_recipe
from resnet.train.distributed import DistContext
from resnet.train.averaging import ramped_decay, update_average, weight_average
from resnet.train.dirac import dirac_convs
from resnet.train.optim import build_optimizer, group_plan
from resnet.train.trainer import weights_digest

TINY = {"iterations": "6", "eval_every": "100", "log_every": "3", "batch_size": "32", "holdout": "100", "core_replicas": "1"}


def _trainer(out: Path, **overrides: str) -> Trainer:
    opts = TrainOptions(model="resnet8", data="digits", overrides={**TINY, **overrides}, out=out, progress=False,
                        tensorboard=False)
    trainer = Trainer(opts, torch.device("cpu"), DistContext())
    trainer.build()
    return trainer


def _batches(trainer: Trainer, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    stream = trainer.task.data.stream(0, 0)
    return [next(stream) for _ in range(n)]


def test_state_dict_then_restore_replays_the_same_steps_bit_for_bit(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", ema_decay="0.9")
    batches = _batches(trainer, 3)
    trainer.step(*batches[0])
    saved = copy.deepcopy(trainer.state_dict())  # the optimizer's momentum is updated in place by later steps
    for batch in batches[1:]:
        trainer.step(*batch)
    first = weights_digest(trainer.model), weights_digest(trainer.eval_net)
    assert trainer.iteration == 3 and first[0] != first[1]  # the EMA is a network of its own

    trainer.restore(saved)
    assert trainer.iteration == 1
    for batch in batches[1:]:
        trainer.step(*batch)
    assert (weights_digest(trainer.model), weights_digest(trainer.eval_net)) == first
    trainer.log()
    assert trainer.should_stop() is False and trainer.evaluate() is True
    assert trainer.final["test_error"] is not None and (tmp_path / "run" / "last.safetensors").is_file()
    trainer.log_file.close()


def test_restore_refuses_a_state_of_other_settings(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run")
    state = trainer.state_dict()
    other = _trainer(tmp_path / "other", lr="0.3")
    with pytest.raises(UsageError, match="lr: 0.1 then, 0.3 now.*another `out`"):
        other.restore(state)
    trainer.log_file.close()
    other.log_file.close()


def test_group_plan_from_scratch_splits_by_decay_with_the_decayed_group_first() -> None:
    model = resnet.create_model("resnet8", num_classes=10)
    recipe = resolve_recipe("cifar-paper", {"decay_bn_and_bias": "false"})
    plans = group_plan(model, recipe, pretrained=False, split_head=False)
    assert [p.name for p in plans] == ["all", "all (no decay)"]
    assert all(p.ndim > 1 for p in plans[0].params) and all(p.ndim <= 1 for p in plans[1].params)
    assert plans[1].weight_decay == 0.0 and plans[0].weight_decay == recipe.weight_decay
    assert sum(len(p.params) for p in plans) == len(list(model.parameters()))
    one = group_plan(model, get_recipe("cifar-paper"), pretrained=False, split_head=False)  # the paper decays every tensor
    assert len(one) == 1 and len(one[0].params) == len(list(model.parameters()))
    optimizer = build_optimizer(plans, recipe)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [recipe.weight_decay, 0.0]
    assert all(g["lr_scale"] == 1.0 and g["momentum"] == recipe.momentum for g in optimizer.param_groups)


def test_bias_lr_scale_moves_the_1d_tensors_to_their_own_group_with_the_same_decay_per_step() -> None:
    """Page's and airbench's 64x learning rate for batch-norm shifts: lr x64 and weight decay /64, so lr * decay
    stays; the other tensors and the groups' order before them are as without it."""
    model = resnet.create_model("resnet8", num_classes=10)
    recipe = resolve_recipe("cifar-paper", {"bias_lr_scale": "64"})
    plans = group_plan(model, recipe, pretrained=False, split_head=False)
    assert [p.name for p in plans] == ["all", "all 1-d"]
    assert all(p.ndim > 1 for p in plans[0].params) and all(p.ndim == 1 for p in plans[1].params)
    assert (plans[0].lr_scale, plans[0].weight_decay) == (1.0, recipe.weight_decay)
    assert (plans[1].lr_scale, plans[1].weight_decay) == (64.0, recipe.weight_decay / 64)
    undecayed = group_plan(model, resolve_recipe("cifar-paper", {"bias_lr_scale": "64", "decay_bn_and_bias": "false"}),
                           pretrained=False, split_head=False)
    assert [(p.name, p.weight_decay) for p in undecayed] == [("all", recipe.weight_decay), ("all (no decay) 1-d", 0.0)]
    with pytest.raises(UsageError, match="bias_lr_scale must be positive"):
        resolve_recipe("cifar-paper", {"bias_lr_scale": "0"})


def test_eval_views_are_the_shift_protocols_views_in_the_same_order() -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    fill = torch.tensor([-1.0, -2.0, -3.0])[:, None, None]
    assert len(eval_views(x, flip=False, shift=0)) == 1 and torch.equal(eval_views(x, flip=True, shift=0)[1], x.flip(-1))
    unflipped = eval_views(x, flip=False, shift=1, fill=fill)
    assert [torch.equal(a, b) for a, b in zip(unflipped, [x, translate(x, 1, 1, fill), translate(x, -1, -1, fill)])] == [True] * 3
    both = eval_views(x, flip=True, shift=1, fill=fill)
    assert len(both) == 6 and all(torch.equal(a, b) for a, b in zip(both, shift_views(x, 1, fill)))
    assert both[4][0, 2, 0, 0] == -3.0 and torch.equal(both[3], x.flip(-1))


@pytest.mark.parametrize("protocol", ["flip", "shift"])
def test_trainer_flip_and_shift_scores_are_the_eval_protocols(protocol: str) -> None:
    """The trainer's test-time views (on normalised tensors, a normalised black border) and ``resnet eval``'s
    ``flip`` / ``shift`` protocols (on uint8 crops, normalised afterwards) go through one averaging function,
    so on the same images and weights they give the same error and the same loss."""
    import resnet.inference.protocols as protocols
    import resnet.train.tasks as trainer_module  # the classification task scores the views
    from resnet.data.preprocess import Preprocess, network_input
    from resnet.inference.protocols import Scorer, get_protocol
    from resnet.train.data import EvalSet
    from resnet.train.tasks import evaluate

    assert trainer_module.view_probabilities is protocols.view_probabilities
    torch.manual_seed(0)
    model = resnet.create_model("resnet8", num_classes=10).eval()
    pre = Preprocess((0.49, 0.48, 0.45), (0.25, 0.24, 0.26), 32)
    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (24,))
    shift = 2
    evalset = EvalSet("test", len(images), lambda: iter([(network_input(images[:16], pre), labels[:16]),
                                                         (network_input(images[16:], pre), labels[16:])]))
    black = network_input(torch.zeros(1, 3, 1, 1, dtype=torch.uint8), pre)[0]
    error, loss = evaluate(model, evalset, flip=True, shift=shift if protocol == "shift" else 0, fill=black, amp=None,
                           device=torch.device("cpu"), dist=DistContext())

    probs = get_protocol(protocol, shift=shift if protocol == "shift" else None).probabilities(Scorer.of(model), images, pre)
    assert round(error * len(images) / 100) == int((probs.argmax(1) != labels).sum())
    expected_loss = float(-probs.clamp_min(1e-12).log().gather(1, labels[:, None]).mean())
    assert loss == pytest.approx(expected_loss, rel=1e-5)


def test_lookahead_pulls_the_weights_back_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    runs = {}
    for name, alpha in (("plain", None), ("same", "1.0"), ("half", "0.5")):
        trainer = _trainer(tmp_path / name, **({"lookahead_k": "2", "lookahead_alpha": alpha} if alpha else {}))
        batches = _batches(trainer, 6)
        for batch in batches[:2]:
            trainer.step(*batch)
        saved = copy.deepcopy(trainer.state_dict())
        for batch in batches[2:]:
            trainer.step(*batch)
        digest, runs[name] = weights_digest(trainer.model), copy.deepcopy(trainer.model.state_dict())
        trainer.restore(saved)  # the slow weights live in the optimizer's state, so a resumed run replays exactly
        for batch in batches[2:]:
            trainer.step(*batch)
        assert weights_digest(trainer.model) == digest
        trainer.log_file.close()

    def gap(a: str, b: str) -> float:
        return max((runs[a][k].float() - runs[b][k].float()).abs().max().item() for k in runs[a])

    assert gap("same", "plain") < 1e-5  # alpha 1: the slow weights follow SGD's (up to rounding of s + (f - s))
    assert gap("half", "plain") > 1e-3


def test_lookahead_settings_are_validated() -> None:
    with pytest.raises(UsageError, match="lookahead_k must be >= 0"):
        resolve_recipe("cifar-fast", {"lookahead_k": "5", "lookahead_alpha": "0"})


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
