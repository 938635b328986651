"""Recipes and learning-rate schedules: plain data, overridable, and the paper's rules exactly."""

from __future__ import annotations

import pytest

from resnet.errors import UsageError
from resnet.train import RECIPES, get_recipe, parse_overrides, resolve_recipe
from resnet.train.schedule import LRSchedule


def test_cifar_paper_recipe_is_the_papers() -> None:
    r = RECIPES["cifar-paper"]
    assert (r.batch_size, r.lr, r.momentum, r.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert (r.iterations, r.milestones, r.gamma, r.holdout) == (64_000, (32_000, 48_000), 0.1, 5_000)
    assert (r.warmup_min_depth, r.warmup_factor, r.warmup_until_error) == (110, 0.1, 80.0)
    im = RECIPES["imagenet-paper"]
    assert (im.batch_size, im.lr, im.iterations, im.schedule, im.augment) == (256, 0.1, 600_000, "plateau", "imagenet")


def test_step_schedule_divides_by_ten_at_the_milestones() -> None:
    s = LRSchedule(RECIPES["cifar-paper"], depth=20)
    assert [s.lr(i) for i in (0, 31_999, 32_000, 47_999, 48_000, 63_999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


def test_deep_nets_warm_up_until_training_error_is_below_80_percent() -> None:
    s = LRSchedule(RECIPES["cifar-paper"], depth=110)
    assert s.lr(0) == pytest.approx(0.01)
    assert not s.observe_training_error(10, 85.0)
    assert s.lr(11) == pytest.approx(0.01)
    assert s.observe_training_error(12, 79.0)
    assert s.lr(13) == pytest.approx(0.1)
    shallow = LRSchedule(RECIPES["cifar-paper"], depth=56)
    assert not shallow.warming_up and shallow.lr(0) == pytest.approx(0.1)


def test_warm_up_has_a_cap_and_survives_a_state_round_trip() -> None:
    s = LRSchedule(RECIPES["cifar-paper"], depth=1202)
    assert s.observe_training_error(400, 90.0)  # the cap: error never fell, the warm-up ends anyway
    again = LRSchedule(RECIPES["cifar-paper"], depth=1202)
    again.load_state_dict(s.state_dict())
    assert again.lr(401) == pytest.approx(0.1)


def test_onecycle_rises_then_falls_to_zero() -> None:
    r = resolve_recipe("cifar-fast", {"iterations": "1000"})
    s = LRSchedule(r)
    peak = round(r.pct_start * 1000)
    assert s.lr(0) == pytest.approx(r.lr * r.warmup_factor)
    assert s.lr(peak) == pytest.approx(r.lr)
    assert s.lr(1000) == pytest.approx(0.0)
    assert s.lr(peak // 2) < s.lr(peak) and s.lr(900) < s.lr(peak)


def test_plateau_drops_after_patience_evaluations_without_improvement() -> None:
    s = LRSchedule(resolve_recipe("imagenet-paper", {"patience": "2"}))
    assert not s.observe_holdout_error(50.0)
    assert not s.observe_holdout_error(50.5)
    assert s.observe_holdout_error(50.2)
    assert s.lr(0) == pytest.approx(0.01)
    assert not s.observe_holdout_error(40.0)  # improvement resets the count


def test_overriding_iterations_rescales_milestones() -> None:
    r = resolve_recipe("cifar-paper", parse_overrides(["iterations=1300"]))
    assert r.milestones == (650, 975)
    explicit = resolve_recipe("cifar-paper", parse_overrides(["iterations=1300", "milestones=100,200"]))
    assert explicit.milestones == (100, 200)
    assert r.extra["overrides"] == {"iterations": "1300"}


def test_override_values_are_typed() -> None:
    r = resolve_recipe("cifar-paper", parse_overrides(["lr=0.05", "nesterov=true", "batch_size=64", "augment=flip"]))
    assert (r.lr, r.nesterov, r.batch_size, r.augment) == (0.05, True, 64, "flip")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["lr=-1"], "lr must be positive"),
        (["batch_size=-8"], "batch_size must be at least 1"),
        (["batch_size=abc"], "batch_size takes an int"),
        (["nesterov=maybe"], "nesterov takes a bool"),
        (["learning_rate=0.1"], "did you mean lr"),
        (["schedule=exponential"], "schedule must be one of"),
        (["milestones=300,200"], "milestones must be increasing"),
        (["name=x"], "cannot be overridden"),
        (["lr"], "KEY=VALUE"),
    ],
)
def test_bad_overrides_are_usage_errors_naming_the_field(items: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_recipe("cifar-paper", parse_overrides(items))


def test_overrides_are_coerced_by_the_resolved_field_types() -> None:
    from dataclasses import dataclass

    from resnet.train.recipes import coerce_field

    @dataclass
    class Fields:  # annotations are strings here (from __future__ import annotations), as in Recipe
        rate: float | None = None
        steps: tuple[int, ...] = ()

    import typing

    hints = typing.get_type_hints(Fields)
    assert coerce_field(hints["rate"], "rate", "0.5") == 0.5
    assert coerce_field(hints["rate"], "rate", "none") is None
    assert coerce_field(hints["steps"], "steps", "100,200") == (100, 200)
    with pytest.raises(UsageError, match="rate takes a float"):
        coerce_field(hints["rate"], "rate", "fast")
    with pytest.raises(UsageError, match="steps takes a comma-separated list of ints"):
        coerce_field(hints["steps"], "steps", "1,x")


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="cifar-paper"):
        resolve_recipe("cifar-slow")


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    recipe = resolve_recipe("finetune", {"iterations": "100"})
    schedule = LRSchedule(recipe)
    lrs = [schedule.lr(s) for s in range(101)]
    assert lrs[0] == pytest.approx(recipe.lr * recipe.warmup_factor)
    assert max(lrs) == pytest.approx(recipe.lr) and lrs.index(max(lrs)) == 10  # 10 % warm-up
    assert lrs[100] == pytest.approx(0.0, abs=1e-12) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_freeze_field_is_checked() -> None:
    assert resolve_recipe("finetune", {"freeze": "stem,layer1"}).freeze == "stem,layer1"
    with pytest.raises(UsageError, match="freeze takes"):
        resolve_recipe("finetune", {"freeze": "head"})


def test_earlier_recipe_versions_stay_reproducible() -> None:
    current = get_recipe("cifar-fast")
    v3 = get_recipe("cifar-fast@3")
    assert current.version >= 4 and get_recipe(f"cifar-fast@{current.version}") is current
    # version 3 as it was: 10,500 iterations of batch 128 at peak lr 0.2, 4-pixel crops, mirror and ±2 px at test time
    assert (v3.version, v3.batch_size, v3.lr, v3.iterations, v3.padding, v3.test_shift, v3.core_replicas) == (3, 128, 0.2, 10_500, 4, 2, 0)
    assert (v3.label_smoothing, v3.ema_decay, v3.weight_decay, v3.schedule) == (0.1, 0.999, 5e-4, "onecycle")
    assert resolve_recipe("cifar-fast@3", {"iterations": "6250"}).iterations == 6250
    # version 4 as it was: 22 epochs of 32-px images throughout; version 5: the same 22 epochs, resized
    v4, v5 = get_recipe("cifar-fast@4"), get_recipe("cifar-fast@5")
    assert (current.version, current.resize_from, current.resize_until, current.iterations) == (6, 16, 0.75, 31_250)
    assert current.eval_every == current.iterations and "20 epochs" in current.description
    assert (v5.version, v5.resize_from, v5.resize_until, v5.iterations, v5.eval_every) == (5, 16, 0.75, 34_375, 34_375)
    assert (v4.version, v4.resize_from, v3.resize_from, v4.batch_size, v4.iterations) == (4, 0, 0, 32, 34_375)
    assert v4.eval_every == 34_375 and "22 epochs" in v5.description and "22 epochs" in v4.description
    assert "progressive resizing" in current.description and "resiz" not in v4.description
    for bad in ("cifar-fast@2", "cifar-fast@x", "cifar-paper@3"):
        with pytest.raises(UsageError, match="has no version"):
            get_recipe(bad)
